//! What the target container's resolver can be told, by what the probe found resolves its
//! names. resolv.conf options are honoured differently: glibc knows `single-request-reopen`
//! and `use-vc`, musl ignores both, and a static executable resolves with its own runtime
//! (Go's resolver, a libc linked in) whatever libc files its image holds. So libc-specific
//! advice is given only for a detected glibc or musl; otherwise it is neutral.

use dns_doctor_schema::LibcKind;

/// The target's resolver as a finding names it, e.g. "the resolver (glibc)"; `kind` is None
/// when the pod probe did not run.
pub fn resolver_name(kind: Option<LibcKind>) -> &'static str {
    match kind {
        Some(LibcKind::Glibc) => "glibc",
        Some(LibcKind::Musl) => "musl",
        Some(LibcKind::Static) => "static executable, no libc",
        Some(LibcKind::Unknown) => "unrecognised libc",
        Some(LibcKind::NotVisible) => "libc unknown: its filesystem was not visible",
        None => "libc unknown: no pod probe ran",
    }
}

/// What the target can change itself when one of its parallel A/AAAA replies is lost;
/// `reopen_set` says its resolv.conf already has `single-request-reopen`.
pub fn lost_parallel_reply(kind: Option<LibcKind>, reopen_set: bool) -> String {
    match kind {
        Some(LibcKind::Musl) => "The target container uses musl: `single-request-reopen` and `use-vc` have no effect there (musl ignores them); use NodeLocal DNSCache, a cache inside the pod, or a glibc-based image.".into(),
        Some(LibcKind::Glibc) if reopen_set => "The target container uses glibc and already sets `single-request-reopen`, yet replies are lost: look for a rule dropping DNS on the node, or switch to `use-vc` (TCP).".into(),
        Some(LibcKind::Glibc) => "The target container uses glibc: add dnsConfig option `single-request-reopen` (A and AAAA from separate sockets), or `use-vc` to resolve over TCP.".into(),
        Some(LibcKind::Static) => "The target's main executable is static, so no libc in the image resolves its names but its own runtime: check what that runtime does (Go's resolver already sends A and AAAA from separate sockets and honours resolv.conf's `single-request` and `use-vc`; a statically linked libc follows its own rules) before adding dnsConfig options; NodeLocal DNSCache helps whatever it is.".into(),
        Some(LibcKind::Unknown | LibcKind::NotVisible) | None => "The target container's resolver could not be identified, so no resolv.conf option is known to help it: rely on NodeLocal DNSCache, and find out what resolves the application's names (its libc, or a runtime of its own such as Go's) before adding dnsConfig options.".into(),
    }
}

/// How the target could resolve over TCP while UDP is blocked, or None when what resolves
/// its names is not known.
pub fn tcp_instead_of_udp(kind: Option<LibcKind>) -> Option<String> {
    match kind {
        Some(LibcKind::Glibc) => Some("Until then, the target container (glibc) can be switched to TCP with the dnsConfig option `use-vc`.".into()),
        Some(LibcKind::Musl) => Some("The target container uses musl, which ignores `use-vc`: it keeps querying over UDP until the firewall is fixed.".into()),
        Some(LibcKind::Static) => Some("The target's main executable is static and resolves with its own runtime: Go's resolver switches to TCP with the dnsConfig option `use-vc`; check whether yours has such a switch.".into()),
        Some(LibcKind::Unknown | LibcKind::NotVisible) | None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Option<LibcKind>; 6] = [
        Some(LibcKind::Glibc),
        Some(LibcKind::Musl),
        Some(LibcKind::Static),
        Some(LibcKind::Unknown),
        Some(LibcKind::NotVisible),
        None,
    ];

    /// Advice that only holds for one libc names it; anything else must not.
    fn is_glibc_advice(text: &str) -> bool {
        text.contains("uses glibc") || text.contains("(glibc)")
    }

    #[test]
    fn glibc_options_are_advised_only_for_glibc() {
        for kind in ALL {
            let texts = [
                lost_parallel_reply(kind, false),
                lost_parallel_reply(kind, true),
                tcp_instead_of_udp(kind).unwrap_or_default(),
            ];
            let glibc = kind == Some(LibcKind::Glibc);
            for t in &texts {
                if !t.is_empty() {
                    assert_eq!(is_glibc_advice(t), glibc, "{kind:?}: {t}");
                }
            }
            let reopen_advised = texts[0].contains("add dnsConfig option `single-request-reopen`");
            assert_eq!(reopen_advised, glibc, "{kind:?}: {}", texts[0]);
        }
    }

    #[test]
    fn musl_is_told_its_options_do_nothing() {
        let t = lost_parallel_reply(Some(LibcKind::Musl), false);
        assert!(t.contains("musl ignores them"), "{t}");
        assert!(tcp_instead_of_udp(Some(LibcKind::Musl))
            .unwrap()
            .contains("ignores `use-vc`"));
    }

    #[test]
    fn static_and_unidentified_resolvers_get_neutral_advice() {
        let t = lost_parallel_reply(Some(LibcKind::Static), false);
        assert!(t.contains("its own runtime"), "{t}");
        assert!(t.contains("Go's resolver"), "{t}");
        for kind in [Some(LibcKind::Unknown), Some(LibcKind::NotVisible), None] {
            let t = lost_parallel_reply(kind, false);
            assert!(t.contains("NodeLocal DNSCache"), "{t}");
            assert!(!t.contains("single-request"), "{t}");
            assert_eq!(tcp_instead_of_udp(kind), None);
        }
    }

    #[test]
    fn names_say_static_and_unknown() {
        assert_eq!(
            resolver_name(Some(LibcKind::Static)),
            "static executable, no libc"
        );
        assert_eq!(resolver_name(Some(LibcKind::Unknown)), "unrecognised libc");
        assert_eq!(resolver_name(None), "libc unknown: no pod probe ran");
    }
}
