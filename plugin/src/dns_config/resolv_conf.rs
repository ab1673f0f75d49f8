//! Parser for resolv.conf as glibc reads it, and the search-list expansion a stub resolver
//! performs for one name.
//!
//! glibc rules followed here: a line whose first non-blank character is `#` or `;` is a
//! comment; `domain` and `search` replace each other (the last one wins); `options` may
//! repeat and later values win; `ndots` is capped at 15, `timeout` at 30, `attempts` at 5;
//! defaults are ndots 1, timeout 5, attempts 2. glibc uses only the first three
//! nameservers (`MAXNS`); all are kept here and [`ResolvConf::effective_nameservers`] gives
//! the three. With no nameserver line glibc queries 127.0.0.1; with no search/domain line it
//! derives the search domain from the host name (not visible in the file, so `search` is
//! empty here).

use std::net::IpAddr;

use serde::Serialize;

/// glibc's defaults and caps (resolv.h: RES_DFLRETRY, RES_TIMEOUT, RES_MAXNDOTS, ...).
pub const DEFAULT_NDOTS: u32 = 1;
pub const DEFAULT_TIMEOUT_SECS: u32 = 5;
pub const DEFAULT_ATTEMPTS: u32 = 2;
const MAX_NDOTS: u32 = 15;
const MAX_TIMEOUT_SECS: u32 = 30;
const MAX_ATTEMPTS: u32 = 5;
/// glibc's MAXNS: nameservers beyond the third are ignored.
pub const MAX_NAMESERVERS: usize = 3;

/// A nameserver line. IPv6 link-local addresses may carry a zone (`fe80::1%eth0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nameserver {
    pub address: IpAddr,
    pub zone: Option<String>,
}

/// Parsed resolv.conf with glibc defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvConf {
    pub nameservers: Vec<Nameserver>,
    /// The search list from the last `search` or `domain` line.
    pub search: Vec<String>,
    pub ndots: u32,
    pub timeout_secs: u32,
    pub attempts: u32,
    pub rotate: bool,
    /// Send A and AAAA one after the other on the same socket.
    pub single_request: bool,
    /// Send A and AAAA one after the other, each from a new socket (works around the
    /// conntrack race on parallel queries from one source port). glibc only.
    pub single_request_reopen: bool,
    /// Query over TCP.
    pub use_vc: bool,
    pub edns0: bool,
    pub trust_ad: bool,
    pub no_aaaa: bool,
    pub no_tld_query: bool,
    /// Options this parser does not interpret, as written.
    pub other_options: Vec<String>,
    /// Lines it could not read (bad nameserver address, unknown keyword), with line numbers.
    pub ignored_lines: Vec<(usize, String)>,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            attempts: DEFAULT_ATTEMPTS,
            rotate: false,
            single_request: false,
            single_request_reopen: false,
            use_vc: false,
            edns0: false,
            trust_ad: false,
            no_aaaa: false,
            no_tld_query: false,
            other_options: Vec::new(),
            ignored_lines: Vec::new(),
        }
    }
}

impl ResolvConf {
    /// The nameservers glibc queries: the first three.
    pub fn effective_nameservers(&self) -> &[Nameserver] {
        &self.nameservers[..self.nameservers.len().min(MAX_NAMESERVERS)]
    }

    /// What glibc tries for `name` with this file's ndots and search list.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        glibc_search_candidates(name, self.ndots, &self.search, self.no_tld_query)
    }
}

/// Parses resolv.conf text. Never fails: unreadable lines are collected in
/// [`ResolvConf::ignored_lines`], as glibc skips them.
pub fn parse_resolv_conf(input: &str) -> ResolvConf {
    let mut rc = ResolvConf::default();
    for (idx, raw) in input.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        let keyword = words.next().unwrap_or_default();
        match keyword {
            "nameserver" => match words.next().and_then(parse_nameserver) {
                Some(ns) => rc.nameservers.push(ns),
                None => rc.ignored_lines.push((idx + 1, raw.to_string())),
            },
            "domain" => {
                rc.search = words
                    .next()
                    .map(|d| vec![d.to_string()])
                    .unwrap_or_default();
            }
            "search" => {
                rc.search = words.map(str::to_string).collect();
            }
            "options" => {
                for opt in words {
                    apply_option(&mut rc, opt);
                }
            }
            // glibc reads `sortlist` but it does not affect which names are queried.
            "sortlist" => {}
            _ => rc.ignored_lines.push((idx + 1, raw.to_string())),
        }
    }
    rc
}

fn parse_nameserver(text: &str) -> Option<Nameserver> {
    let (addr, zone) = match text.split_once('%') {
        Some((a, z)) => (a, Some(z.to_string())),
        None => (text, None),
    };
    Some(Nameserver {
        address: addr.parse().ok()?,
        zone,
    })
}

fn apply_option(rc: &mut ResolvConf, opt: &str) {
    let num = |v: &str, cap: u32| v.parse::<u32>().ok().map(|n| n.min(cap));
    match opt.split_once(':') {
        Some(("ndots", v)) => match num(v, MAX_NDOTS) {
            Some(n) => rc.ndots = n,
            None => rc.other_options.push(opt.to_string()),
        },
        Some(("timeout", v)) => match num(v, MAX_TIMEOUT_SECS) {
            // glibc treats timeout:0 as 1 second at query time; keep what the file says.
            Some(n) => rc.timeout_secs = n,
            None => rc.other_options.push(opt.to_string()),
        },
        Some(("attempts", v)) => match num(v, MAX_ATTEMPTS) {
            Some(n) => rc.attempts = n,
            None => rc.other_options.push(opt.to_string()),
        },
        _ => match opt {
            "rotate" => rc.rotate = true,
            "single-request" => rc.single_request = true,
            "single-request-reopen" => rc.single_request_reopen = true,
            "use-vc" => rc.use_vc = true,
            "edns0" => rc.edns0 = true,
            "trust-ad" => rc.trust_ad = true,
            "no-aaaa" => rc.no_aaaa = true,
            "no-tld-query" => rc.no_tld_query = true,
            other => rc.other_options.push(other.to_string()),
        },
    }
}

fn fqdn(name: &str) -> String {
    let mut s = name.trim_end_matches('.').to_string();
    s.push('.');
    s
}

/// The ordered list of absolute names (with a trailing dot) glibc's `res_search` queries for
/// `name`, each of them for every address family asked.
///
/// glibc: a name ending in `.` is queried as is and nothing else. Otherwise, with `d` the
/// number of dots in `name`: if `d >= ndots` the name is tried as is first; then every search
/// domain is appended in order; then, if it was not tried first, the name as is (skipped for
/// a single label when `no_tld_query` is set). The walk stops at the first answer that is
/// not NXDOMAIN/NODATA, so a lookup costs at most `candidates.len()` queries per family.
///
/// musl differs (since 1.1.13 it walks the search list too): when `d >= ndots` it tries only
/// the name as is and never the search list; otherwise it tries the search domains and then
/// the name as is, but it stops the walk at the first server failure or timeout rather than
/// moving on. musl sends the A and AAAA queries of every candidate in parallel from one
/// socket and has no `single-request`/`single-request-reopen` (it ignores them), so the
/// conntrack race cannot be worked around with resolv.conf options there; `use-vc` is also
/// ignored by musl. See [`musl_search_candidates`].
pub fn glibc_search_candidates(
    name: &str,
    ndots: u32,
    search: &[String],
    no_tld_query: bool,
) -> Vec<String> {
    if name.is_empty() || name == "." {
        return vec![".".to_string()];
    }
    if name.ends_with('.') {
        return vec![fqdn(name)];
    }
    let dots = name.matches('.').count() as u64;
    let as_is_first = dots >= u64::from(ndots);
    let mut out = Vec::new();
    if as_is_first {
        out.push(fqdn(name));
    }
    for domain in search {
        let domain = domain.trim_end_matches('.');
        let candidate = if domain.is_empty() {
            fqdn(name)
        } else {
            format!("{name}.{domain}.")
        };
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    // A single label is not sent to the root under `no-tld-query`.
    let skip_bare_label = dots == 0 && no_tld_query;
    if !(as_is_first || skip_bare_label) {
        let as_is = fqdn(name);
        if !out.contains(&as_is) {
            out.push(as_is);
        }
    }
    out
}

/// The candidates musl's resolver tries (see [`glibc_search_candidates`] for the
/// differences): the name alone when it ends in `.` or has at least `ndots` dots, else the
/// search domains in order followed by the name as is.
pub fn musl_search_candidates(name: &str, ndots: u32, search: &[String]) -> Vec<String> {
    if name.is_empty() || name == "." {
        return vec![".".to_string()];
    }
    let dots = name.matches('.').count() as u64;
    if name.ends_with('.') || dots >= u64::from(ndots) {
        return vec![fqdn(name)];
    }
    let mut out: Vec<String> = search
        .iter()
        .map(|d| d.trim_end_matches('.'))
        .filter(|d| !d.is_empty())
        .map(|d| format!("{name}.{d}."))
        .collect();
    out.push(fqdn(name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn glibc_expansion_with_kubernetes_search_list() {
        let search = s(&[
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
        ]);
        assert_eq!(
            glibc_search_candidates("example.com", 5, &search, false),
            s(&[
                "example.com.default.svc.cluster.local.",
                "example.com.svc.cluster.local.",
                "example.com.cluster.local.",
                "example.com."
            ])
        );
        assert_eq!(
            glibc_search_candidates("a.b.c.d.e.f", 5, &search, false)[0],
            "a.b.c.d.e.f."
        );
        assert_eq!(
            glibc_search_candidates("example.com.", 5, &search, false),
            s(&["example.com."])
        );
        assert_eq!(
            glibc_search_candidates("host", 1, &s(&["corp"]), true),
            s(&["host.corp."])
        );
        assert_eq!(
            musl_search_candidates("a.b.c.d.e.f", 5, &search),
            s(&["a.b.c.d.e.f."])
        );
        assert_eq!(musl_search_candidates("web", 5, &search).len(), 4);
    }

    #[test]
    fn last_search_or_domain_wins_and_options_cap() {
        let rc = parse_resolv_conf(
            "search a b\ndomain c\n; comment\nnameserver 10.0.0.1\nnameserver bogus\noptions ndots:99 timeout:0 attempts:9 rotate weird\n",
        );
        assert_eq!(rc.search, s(&["c"]));
        assert_eq!((rc.ndots, rc.timeout_secs, rc.attempts), (15, 0, 5));
        assert!(rc.rotate);
        assert_eq!(rc.other_options, s(&["weird"]));
        assert_eq!(rc.ignored_lines.len(), 1);
        let rc = parse_resolv_conf("");
        assert_eq!((rc.ndots, rc.timeout_secs, rc.attempts), (1, 5, 2));
    }
}
