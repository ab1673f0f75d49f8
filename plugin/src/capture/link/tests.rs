//! The hand-read UDP packets must come out as etherparse slices them: every frame of real
//! captures (tcpdump's test suite and ours), damaged copies of them and crafted edge cases
//! give the same segment, or none, with and without the shortcut.

use super::*;
use crate::capture::reader::CaptureReader;
use crate::capture::testdata::{captures, fixtures, tcpdump_suite};
use std::io::BufReader;
use std::path::Path;

/// Whether the shortcut took the frame; panics when it differs from etherparse.
fn same_with_and_without_shortcut(linktype: Linktype, data: &[u8]) -> bool {
    let Some(net) = network(linktype, data) else {
        assert_eq!(segment(linktype, data), None);
        return false;
    };
    let quick = plain_udp(&net);
    let taken = quick.is_some();
    let reference = sliced_segment(net);
    if taken {
        assert_eq!(quick.map(Layer4::Segment), reference, "{data:02x?}");
    }
    assert_eq!(segment(linktype, data), reference, "{data:02x?}");
    taken
}

fn frames(path: &Path) -> Vec<(Linktype, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(file) = std::fs::File::open(path) else {
        return out;
    };
    let Ok(mut reader) = CaptureReader::new(BufReader::new(file)) else {
        return out;
    };
    while let Ok(Some(frame)) = reader.next_frame() {
        out.push((frame.linktype, frame.data.to_vec()));
    }
    out
}

#[test]
fn real_frames_are_read_as_etherparse_reads_them() {
    let mut files = captures(&fixtures());
    files.extend(captures(&tcpdump_suite()));
    let (mut frames_seen, mut taken) = (0, 0);
    for f in &files {
        for (linktype, data) in frames(f) {
            frames_seen += 1;
            taken += usize::from(same_with_and_without_shortcut(linktype, &data));
        }
    }
    assert!(frames_seen > 10_000, "only {frames_seen} frames");
    assert!(taken > 1000, "the shortcut took only {taken} frames");
}

#[test]
fn damaged_frames_are_read_as_etherparse_reads_them() {
    let mut seeds: Vec<(Linktype, Vec<u8>)> = captures(&fixtures())
        .iter()
        .flat_map(|f| frames(f))
        .filter(|(lt, d)| network(*lt, d).is_some_and(|n| plain_udp(&n).is_some()))
        .collect();
    seeds.extend(crafted());
    assert!(seeds.len() > 20);
    let values = [
        0x00, 0x01, 0x05, 0x06, 0x08, 0x11, 0x20, 0x3f, 0x45, 0x60, 0x81, 0xff,
    ];
    for (linktype, seed) in &seeds {
        for len in 0..seed.len() {
            same_with_and_without_shortcut(*linktype, &seed[..len]);
        }
        // Link, IP and UDP headers (an IPv6 one is 40 bytes long).
        for at in 0..seed.len().min(80) {
            for v in values {
                let mut d = seed.clone();
                d[at] = v;
                same_with_and_without_shortcut(*linktype, &d);
            }
        }
    }
}

fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(src_port.to_be_bytes());
    u.extend(dst_port.to_be_bytes());
    u.extend((8 + payload.len() as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

fn ipv4(flags_offset: u16, protocol: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + payload.len()) as u16;
    let mut p = vec![0x40 | ihl as u8, 0];
    p.extend(total.to_be_bytes());
    p.extend([0, 1]);
    p.extend(flags_offset.to_be_bytes());
    p.extend([64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 53]);
    p.extend(options);
    p.extend(payload);
    p
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((payload.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]);
    p.extend(payload);
    p
}

fn ethernet(ether_type: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend(ether_type.to_be_bytes());
    f.extend(packet);
    f
}

fn crafted() -> Vec<(Linktype, Vec<u8>)> {
    let dns = udp(
        40000,
        53,
        &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
    );
    let v4 = ipv4(0, 17, &[], &dns);
    let v6 = ipv6(17, &dns);
    let mut padded = ethernet(0x0800, &v4);
    padded.extend([0; 18]);
    let mut short_udp_len = v4.clone();
    short_udp_len[20 + 5] -= 1;
    let mut vlan = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 7, 8, 0];
    vlan.extend(&v4);
    vec![
        (Linktype::ETHERNET, ethernet(0x0800, &v4)),
        (Linktype::ETHERNET, ethernet(0x86dd, &v6)),
        (Linktype::ETHERNET, padded),
        (Linktype::ETHERNET, vlan),
        // The ether type and the IP version disagree.
        (Linktype::ETHERNET, ethernet(0x0800, &v6)),
        (Linktype::ETHERNET, ethernet(0x86dd, &v4)),
        (Linktype::RAW, v4.clone()),
        (Linktype::RAW, v6.clone()),
        (Linktype::RAW, short_udp_len),
        (Linktype::RAW, ipv4(0, 17, &[1, 1, 1, 0], &dns)),
        (Linktype::RAW, ipv4(0x2000, 17, &[], &dns)),
        (Linktype::RAW, ipv4(0x0001, 17, &[], &dns)),
        (Linktype::RAW, ipv4(0x4000, 17, &[], &dns)),
        (Linktype::RAW, ipv4(0, 6, &[], &dns)),
        // An IPv6 hop-by-hop header before the UDP one.
        (
            Linktype::RAW,
            ipv6(0, &[[17, 0, 1, 4, 0, 0, 0, 0].as_slice(), &dns].concat()),
        ),
        (Linktype::RAW, ipv6(44, &dns)),
    ]
}

#[test]
fn crafted_frames_are_read_as_etherparse_reads_them() {
    let crafted = crafted();
    let taken: Vec<bool> = crafted
        .iter()
        .map(|(lt, d)| same_with_and_without_shortcut(*lt, d))
        .collect();
    // Plain IPv4 and IPv6 UDP, on Ethernet (padded or not) and bare, take the shortcut.
    assert_eq!(&taken[..3], [true, true, true]);
    assert_eq!(&taken[6..8], [true, true]);
    assert!(!taken[3] && !taken[4] && !taken[5] && !taken[8]);
}
