//! Decimal integers and IPv4 addresses written straight into a byte buffer.
//!
//! `analyze -o json` writes several numbers and addresses for each of hundreds of
//! thousands of transactions, and every A answer is presented as text; through `std::fmt`
//! (argument tables, padding, one virtual call per piece) that cost more than reading and
//! matching the packets did. The output is exactly what `Display` prints.

use std::net::Ipv4Addr;

/// Appends `v` in decimal, as `u64`'s `Display` prints it.
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `ip` in dotted-quad form, as `Ipv4Addr`'s `Display` prints it.
pub fn push_ipv4(out: &mut Vec<u8>, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + (octet / 10) % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_print_as_display_does() {
        for v in [0, 1, 9, 10, 99, 100, 65_535, 1_000_000_007, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    #[test]
    fn addresses_print_as_display_does() {
        for ip in [
            Ipv4Addr::new(0, 0, 0, 0),
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(10, 96, 0, 10),
            Ipv4Addr::new(192, 0, 2, 255),
            Ipv4Addr::new(9, 99, 100, 199),
            Ipv4Addr::new(255, 255, 255, 255),
        ] {
            let mut out = Vec::new();
            push_ipv4(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }
}
