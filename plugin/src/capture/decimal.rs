//! IPv4 addresses written straight into a byte buffer.
//!
//! Every A record of every answer is presented as text; through `std::fmt` (argument
//! tables, padding, one virtual call per octet) that cost more than decoding the record.
//! The output is exactly what `Display` prints.

use std::net::Ipv4Addr;

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
