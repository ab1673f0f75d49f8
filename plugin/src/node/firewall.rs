//! What counts as "a filtering rule that could touch cluster DNS", shared by the iptables and
//! nftables readers so the diagnosis rules see one shape whatever the backend.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// The addresses and port that cluster DNS traffic uses on this cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsScope {
    /// Usually 53.
    pub port: u16,
    /// The cluster's pod ranges (10.244.0.0/16 ...).
    pub pod_cidrs: Vec<IpNet>,
    /// The service ranges (10.96.0.0/16 ...).
    pub service_cidrs: Vec<IpNet>,
    /// Specific DNS addresses: the DNS ClusterIP, its endpoints, a NodeLocal DNSCache address.
    pub dns_addresses: Vec<IpAddr>,
}

impl DnsScope {
    /// Scope with port 53 and the given ranges.
    pub fn new(
        pod_cidrs: Vec<IpNet>,
        service_cidrs: Vec<IpNet>,
        dns_addresses: Vec<IpAddr>,
    ) -> Self {
        DnsScope {
            port: 53,
            pod_cidrs,
            service_cidrs,
            dns_addresses,
        }
    }

    /// Which scope ranges a (non-negated) address match overlaps.
    pub(crate) fn address_reasons(&self, net: &IpNet) -> Vec<TouchReason> {
        let mut out = Vec::new();
        if self.pod_cidrs.iter().any(|c| overlaps(c, net)) {
            out.push(TouchReason::PodCidr);
        }
        if self.service_cidrs.iter().any(|c| overlaps(c, net)) {
            out.push(TouchReason::ServiceCidr);
        }
        if self.dns_addresses.iter().any(|a| net.contains(a)) {
            out.push(TouchReason::DnsAddress);
        }
        out
    }

    /// True when a negated match `! net` still lets some scope traffic through, i.e. `net`
    /// does not cover every scope range and address.
    pub(crate) fn escapes_negation(&self, net: &IpNet) -> bool {
        let all_inside = self.pod_cidrs.iter().all(|c| net.contains(c))
            && self.service_cidrs.iter().all(|c| net.contains(c))
            && self.dns_addresses.iter().all(|a| net.contains(a));
        !all_inside
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Why a rule was judged able to touch DNS traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TouchReason {
    /// Its destination or source port set includes the DNS port.
    DnsPort,
    /// An address match overlaps a pod range.
    PodCidr,
    /// An address match overlaps a service range.
    ServiceCidr,
    /// An address match contains one of the DNS addresses.
    DnsAddress,
    /// It inspects payload (`-m string`, `-m u32`, nft raw payload): typical of AAAA or
    /// query-name filters.
    PayloadMatch,
    /// It restricts neither addresses nor ports, so it applies to DNS too (other conditions,
    /// such as a conntrack state, are listed in [`DnsTouchingRule::conditions`]).
    Unconditional,
}

/// The verdict of a filtering rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockVerdict {
    Drop,
    Reject { with: Option<String> },
}

/// A DROP/REJECT rule that DNS traffic could meet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsTouchingRule {
    /// iptables table (`filter`, `raw`, `mangle`) or nft `family name`.
    pub table: String,
    pub chain: String,
    /// The base chains (hooks) from which this rule's chain is reached.
    pub reached_from: Vec<String>,
    pub verdict: BlockVerdict,
    pub reasons: Vec<TouchReason>,
    /// Matches that were not evaluated (conntrack state, marks, interfaces, randomness...).
    pub conditions: Vec<String>,
    pub comment: Option<String>,
    /// The rule as written in the dump.
    pub text: String,
    /// Line in the dump (1-based).
    pub line: usize,
    pub packets: Option<u64>,
}

/// A base chain's default policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainPolicy {
    pub table: String,
    pub chain: String,
    /// `ACCEPT`/`DROP` (iptables) or `accept`/`drop` (nft).
    pub policy: String,
    /// Packets that hit the policy, when the dump has counters.
    pub packets: Option<u64>,
}

impl ChainPolicy {
    pub fn is_drop(&self) -> bool {
        self.policy.eq_ignore_ascii_case("drop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_reasons_and_negation() {
        let scope = DnsScope::new(
            vec!["10.244.0.0/16".parse().unwrap()],
            vec!["10.96.0.0/16".parse().unwrap()],
            vec!["10.96.0.10".parse().unwrap()],
        );
        let r = scope.address_reasons(&"10.96.0.10/32".parse().unwrap());
        assert_eq!(r, vec![TouchReason::ServiceCidr, TouchReason::DnsAddress]);
        assert_eq!(
            scope.address_reasons(&"10.0.0.0/8".parse().unwrap()),
            vec![
                TouchReason::PodCidr,
                TouchReason::ServiceCidr,
                TouchReason::DnsAddress
            ]
        );
        assert!(scope
            .address_reasons(&"127.0.0.0/8".parse().unwrap())
            .is_empty());
        assert!(!scope.escapes_negation(&"10.0.0.0/8".parse().unwrap()));
        assert!(scope.escapes_negation(&"127.0.0.0/8".parse().unwrap()));
    }
}
