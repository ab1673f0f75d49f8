//! The little of resolv.conf the probe needs to act like a resolver: nameservers, the search
//! list and ndots. The plugin parses the raw file fully (options, timeouts, ...); this is only
//! enough to send the queries a resolver would send.

use std::net::IpAddr;

/// glibc uses at most this many `nameserver` lines (MAXNS).
const MAX_NAMESERVERS: usize = 3;
/// glibc caps ndots at 15 (RES_MAXNDOTS).
const MAX_NDOTS: u32 = 15;
/// glibc's default when no `options ndots:` is given.
const DEFAULT_NDOTS: u32 = 1;

/// What a resolver takes from resolv.conf to decide which names to ask and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// Usable `nameserver` addresses, in file order, at most three as glibc.
    pub nameservers: Vec<IpAddr>,
    /// The search list (the last `search` or `domain` line wins, as in glibc).
    pub search: Vec<String>,
    pub ndots: u32,
}

impl Default for ResolvConf {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
        }
    }
}

/// Parses resolv.conf text. Never fails: unknown or malformed lines are skipped, as a
/// resolver would skip them.
pub fn parse(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        // Comments start with '#' or ';' anywhere on the line.
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A scoped IPv6 address ("fe80::1%eth0") cannot be parsed as IpAddr; skip it.
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    if conf.nameservers.len() < MAX_NAMESERVERS {
                        conf.nameservers.push(ip);
                    }
                }
            }
            Some("search") | Some("domain") => {
                conf.search = words
                    .map(|d| d.trim_end_matches('.').to_owned())
                    .filter(|d| !d.is_empty())
                    .collect();
            }
            Some("options") => {
                for option in words {
                    if let Some(n) = option.strip_prefix("ndots:") {
                        if let Ok(n) = n.parse::<u32>() {
                            conf.ndots = n.min(MAX_NDOTS);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    conf
}

/// The fully qualified names (with trailing dot) a glibc resolver tries, in order, for a
/// lookup of `name`: an absolute name (trailing dot) only as given; a name with at least
/// `ndots` dots as given first and then with each search domain; otherwise each search
/// domain first and the name as given last.
pub fn search_candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    if name.ends_with('.') {
        return vec![name.to_owned()];
    }
    let absolute = format!("{name}.");
    let with_domains = conf.search.iter().map(|d| format!("{name}.{d}."));
    let dots = u32::try_from(name.matches('.').count()).unwrap_or(u32::MAX);
    if dots >= conf.ndots {
        std::iter::once(absolute).chain(with_domains).collect()
    } else {
        with_domains.chain(std::iter::once(absolute)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET_STYLE: &str =
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                                 nameserver 10.96.0.10\n\
                                 options ndots:5\n";

    #[test]
    fn parses_a_kubelet_written_file() {
        let conf = parse(KUBELET_STYLE);
        assert_eq!(
            conf.nameservers,
            vec!["10.96.0.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            conf.search,
            vec![
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(conf.ndots, 5);
    }

    #[test]
    fn skips_comments_bad_addresses_and_extra_nameservers() {
        let conf = parse(
            "# a comment\nnameserver 10.0.0.1 ; trailing\nnameserver not-an-ip\n\
             nameserver fe80::1%eth0\nnameserver ::1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
        );
        let expected: Vec<IpAddr> = ["10.0.0.1", "::1", "10.0.0.2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(conf.nameservers, expected);
        assert_eq!(conf.ndots, 1);
    }

    #[test]
    fn last_search_or_domain_line_wins_and_ndots_is_capped() {
        let conf =
            parse("search a.example b.example\ndomain c.example.\noptions rotate ndots:30\n");
        assert_eq!(conf.search, vec!["c.example"]);
        assert_eq!(conf.ndots, 15);
    }

    #[test]
    fn short_names_try_search_domains_first() {
        let conf = parse(KUBELET_STYLE);
        assert_eq!(
            search_candidates("kubernetes.default", &conf),
            vec![
                "kubernetes.default.default.svc.cluster.local.",
                "kubernetes.default.svc.cluster.local.",
                "kubernetes.default.cluster.local.",
                "kubernetes.default.",
            ]
        );
    }

    #[test]
    fn names_with_enough_dots_are_tried_as_given_first() {
        let conf = parse("search svc.cluster.local\noptions ndots:2\n");
        assert_eq!(
            search_candidates("a.b.c", &conf),
            vec!["a.b.c.", "a.b.c.svc.cluster.local."]
        );
    }

    #[test]
    fn absolute_names_are_never_expanded() {
        let conf = parse(KUBELET_STYLE);
        assert_eq!(
            search_candidates("example.test.", &conf),
            vec!["example.test."]
        );
    }
}
