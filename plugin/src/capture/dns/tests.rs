//! The hand-decoded forms must decode exactly as hickory decodes them: every DNS payload of
//! real captures (tcpdump's test suite and ours), damaged copies of them, and crafted edge
//! cases give the same message, or the same error, with and without the shortcuts.

use super::*;
use crate::capture::link::{segment, Layer4};
use crate::capture::reader::CaptureReader;
use crate::capture::testdata::{captures, fixtures, tcpdump_suite};
use std::io::BufReader;
use std::path::Path;

fn same_with_and_without_shortcuts(bytes: &[u8]) {
    assert_eq!(
        DnsMessage::decode(bytes, true),
        DnsMessage::decode(bytes, false),
        "{bytes:02x?}"
    );
}

/// UDP payloads, and TCP payloads without their length prefix, of every frame of `path`.
fn payloads(path: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(file) = std::fs::File::open(path) else {
        return out;
    };
    let Ok(mut reader) = CaptureReader::new(BufReader::new(file)) else {
        return out;
    };
    while let Ok(Some(frame)) = reader.next_frame() {
        if let Some(Layer4::Segment(seg)) = segment(frame.linktype, frame.data) {
            let p = seg.payload;
            match seg.tcp {
                None => out.push(p.to_vec()),
                Some(_) if p.len() > 2 => out.push(p[2..].to_vec()),
                Some(_) => {}
            }
        }
    }
    out
}

#[test]
fn real_captures_decode_as_hickory_decodes_them() {
    let mut files = captures(&fixtures());
    files.extend(captures(&tcpdump_suite()));
    let mut messages = 0;
    for f in &files {
        for p in payloads(f) {
            same_with_and_without_shortcuts(&p);
            messages += usize::from(DnsMessage::parse(&p).is_ok());
        }
    }
    assert!(
        messages > 1000,
        "only {messages} DNS messages in the captures"
    );
}

#[test]
fn damaged_messages_decode_as_hickory_decodes_them() {
    let mut seeds: Vec<Vec<u8>> = captures(&fixtures())
        .iter()
        .flat_map(|f| payloads(f))
        .filter(|p| DnsMessage::parse(p).is_ok_and(|m| m.question.is_some()))
        .collect();
    seeds.extend(crafted());
    assert!(seeds.len() > 20);
    // Bytes that change a label into a pointer, a reserved label type, an empty label or
    // an overlong one, or a character hickory escapes.
    let values = [
        0x00, 0x01, 0x3f, 0x40, 0x80, 0xc0, 0xff, b'-', b'*', b'.', b'A', b'\\',
    ];
    for seed in &seeds {
        for len in 0..seed.len() {
            same_with_and_without_shortcuts(&seed[..len]);
        }
        for at in 12..seed.len() {
            for v in values {
                let mut m = seed.clone();
                m[at] = v;
                same_with_and_without_shortcuts(&m);
            }
        }
    }
}

/// A response to `qname` (labels given raw) with the `answers` (owner, type, class, data).
fn message(qname: &[&[u8]], answers: &[(&[u8], u16, u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
    m.extend((answers.len() as u16).to_be_bytes());
    m.extend([0, 0, 0, 0]);
    for label in qname {
        m.push(label.len() as u8);
        m.extend(*label);
    }
    m.extend([0, 0, 1, 0, 1]);
    for (owner, rtype, class, data) in answers {
        m.extend(*owner);
        m.extend(rtype.to_be_bytes());
        m.extend(class.to_be_bytes());
        m.extend([0, 0, 0, 30]);
        m.extend((data.len() as u16).to_be_bytes());
        m.extend(*data);
    }
    m
}

fn crafted() -> Vec<Vec<u8>> {
    const Q: &[u8] = &[0xc0, 12];
    let v6: &[u8] = &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let long = [b'a'; 63];
    let mut out = vec![
        message(
            &[b"www", b"example", b"test"],
            &[(Q, 1, 1, &[192, 0, 2, 1])],
        ),
        message(&[b"Mixed-Case", b"_srv", b"x1"], &[(Q, 28, 1, v6)]),
        message(&[b"*", b"wild", b"test"], &[(Q, 1, 1, &[10, 0, 0, 255])]),
        // Characters hickory escapes.
        message(&[b"-lead", b"test"], &[]),
        message(&[b"a*b", b"test"], &[]),
        message(&[b"dot.ted", b"test"], &[]),
        message(&[b"sp ace", b"\\back", b"\xc3\xa9"], &[]),
        // The root name.
        message(&[], &[(Q, 1, 1, &[127, 0, 0, 1])]),
        // Data of the wrong length, other classes and types, an owner elsewhere.
        message(&[b"a", b"test"], &[(Q, 1, 1, &[1, 2, 3])]),
        message(&[b"a", b"test"], &[(Q, 1, 1, &[1, 2, 3, 4, 5])]),
        message(&[b"a", b"test"], &[(Q, 28, 1, &[1, 2, 3, 4])]),
        message(&[b"a", b"test"], &[(Q, 1, 3, &[1, 2, 3, 4])]),
        message(&[b"a", b"test"], &[(Q, 1, 1, &[])]),
        message(&[b"a", b"test"], &[(Q, 5, 1, &[1, b'b', 0xc0, 12])]),
        message(&[b"a", b"test"], &[(&[0], 1, 1, &[1, 2, 3, 4])]),
        message(&[b"a", b"test"], &[(&[0xc0, 14], 1, 1, &[1, 2, 3, 4])]),
        message(
            &[b"a", b"test"],
            &[(Q, 1, 1, &[1, 2, 3, 4]), (Q, 99, 1, &[3, b'x', b'y', b'z'])],
        ),
    ];
    // Names at and around the 255-octet limit.
    for labels in 3..=5 {
        for last in [1usize, 10, 20, 60, 63] {
            let mut name: Vec<&[u8]> = vec![&long[..]; labels];
            name.push(&long[..last]);
            out.push(message(&name, &[(Q, 1, 1, &[1, 2, 3, 4])]));
        }
    }
    // A question name that is itself a pointer.
    let mut m = message(&[b"a", b"test"], &[(Q, 1, 1, &[1, 2, 3, 4])]);
    m.splice(12..20, [0xc0, 12, 0, 0, 0, 0, 0, 0]);
    out.push(m);
    out
}

#[test]
fn crafted_messages_decode_as_hickory_decodes_them() {
    for m in crafted() {
        same_with_and_without_shortcuts(&m);
    }
    // The shortcuts are taken where they apply (or the comparisons above prove nothing).
    let m = &crafted()[0];
    assert_eq!(plain_name(m, 12), Some(("www.example.test.".into(), 18)));
    assert_eq!(address_record(&m[34..]), Some(("A 192.0.2.1".into(), 16)));
    let m = DnsMessage::parse(&crafted()[1]).unwrap();
    assert_eq!(m.question.unwrap().name, "Mixed-Case._srv.x1.");
    assert_eq!(m.answers, ["AAAA 2001:db8::1"]);
}
