//! Filtering rules in an nft ruleset that DNS traffic could meet: base-chain policies and
//! every drop/reject reachable from a base chain and not provably limited to other traffic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

use super::firewall::{BlockVerdict, ChainPolicy, DnsScope, DnsTouchingRule, TouchReason};
use super::nftables::{NftMatch, NftRule, NftRuleset, NftTable, NftVerdict};

/// Policies of every base chain with a `filter` type, in every table.
pub fn nft_chain_policies(rs: &NftRuleset) -> Vec<ChainPolicy> {
    let mut out = Vec::new();
    for table in &rs.tables {
        for chain in &table.chains {
            let Some(hook) = &chain.hook else { continue };
            if hook.kind != "filter" {
                continue;
            }
            out.push(ChainPolicy {
                table: table.display_name(),
                chain: chain.name.clone(),
                policy: hook.policy.clone().unwrap_or_else(|| "accept".to_string()),
                packets: None,
            });
        }
    }
    out
}

/// Every drop/reject rule reachable from a base chain that could match DNS traffic as
/// described by `scope`. Named sets defined in the same table are looked up; a set whose
/// elements are unknown counts as possibly matching.
pub fn nft_dns_touching_rules(rs: &NftRuleset, scope: &DnsScope) -> Vec<DnsTouchingRule> {
    let mut out = Vec::new();
    for table in &rs.tables {
        let reach = reachability(table);
        for chain in &table.chains {
            let Some(from) = reach.get(chain.name.as_str()) else {
                continue;
            };
            for rule in &chain.rules {
                let verdict = match &rule.verdict {
                    Some(NftVerdict::Drop) => BlockVerdict::Drop,
                    Some(NftVerdict::Reject { with }) => {
                        BlockVerdict::Reject { with: with.clone() }
                    }
                    _ => continue,
                };
                let Some(reasons) = classify(table, rule, scope) else {
                    continue;
                };
                out.push(DnsTouchingRule {
                    table: table.display_name(),
                    chain: chain.name.clone(),
                    reached_from: from.iter().map(|s| s.to_string()).collect(),
                    verdict,
                    reasons,
                    conditions: conditions(rule),
                    comment: rule.comment.clone(),
                    text: rule.text.clone(),
                    line: rule.line,
                    packets: rule.packets,
                });
            }
        }
    }
    out
}

fn reachability(table: &NftTable) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut reach: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for root in table.chains.iter().filter(|c| c.hook.is_some()) {
        let mut queue = VecDeque::from([root.name.as_str()]);
        let mut visited = BTreeSet::new();
        while let Some(name) = queue.pop_front() {
            if !visited.insert(name) {
                continue;
            }
            reach.entry(name).or_default().insert(root.name.as_str());
            let Some(chain) = table.chain(name) else {
                continue;
            };
            for rule in &chain.rules {
                match &rule.verdict {
                    Some(NftVerdict::Jump { chain }) | Some(NftVerdict::Goto { chain }) => {
                        queue.push_back(chain.as_str())
                    }
                    Some(NftVerdict::Vmap { entries }) => {
                        for (_, v) in entries {
                            if let Some(c) =
                                v.strip_prefix("goto ").or_else(|| v.strip_prefix("jump "))
                            {
                                queue.push_back(c.trim());
                            }
                        }
                    }
                    Some(NftVerdict::NamedVmap { map }) => {
                        for e in table.set(map).into_iter().flat_map(|s| &s.elements) {
                            let v = e.value.as_deref().unwrap_or("");
                            if let Some(c) =
                                v.strip_prefix("goto ").or_else(|| v.strip_prefix("jump "))
                            {
                                queue.push_back(c.trim());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    reach
}

/// Values of a match with named sets replaced by their elements; `None` when a named set is
/// unknown (so the values cannot be judged).
fn resolved_values(table: &NftTable, m: &NftMatch) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for v in &m.values {
        match v.strip_prefix('@') {
            Some(name) => {
                let set = table.set(name)?;
                out.extend(set.elements.iter().map(|e| e.key.clone()));
            }
            None => out.push(v.clone()),
        }
    }
    Some(out)
}

fn port_in(value: &str, port: u16) -> Option<bool> {
    if value == "domain" {
        return Some(port == 53);
    }
    match value.split_once('-') {
        Some((lo, hi)) => {
            let lo: u16 = lo.parse().ok()?;
            let hi: u16 = hi.parse().ok()?;
            Some(lo <= port && port <= hi)
        }
        None => Some(value.parse::<u16>().ok()? == port),
    }
}

fn parse_value_net(value: &str) -> Option<IpNet> {
    if let Some((a, _)) = value.split_once('-') {
        return a.parse::<IpAddr>().ok().map(IpNet::from);
    }
    value
        .parse::<IpNet>()
        .ok()
        .or_else(|| value.parse::<IpAddr>().ok().map(IpNet::from))
}

fn classify(table: &NftTable, rule: &NftRule, scope: &DnsScope) -> Option<Vec<TouchReason>> {
    for m in &rule.matches {
        let is_proto = matches!(
            m.field.as_str(),
            "meta l4proto" | "ip protocol" | "ip6 nexthdr"
        );
        if is_proto && !m.negated {
            let any_dns = m
                .values
                .iter()
                .any(|v| matches!(v.as_str(), "udp" | "tcp" | "17" | "6"));
            if !any_dns {
                return None;
            }
        }
        if matches!(m.field.split(' ').next(), Some("icmp" | "icmpv6")) {
            return None;
        }
    }
    let mut reasons = Vec::new();
    let mut port_restricted = false;
    for m in rule
        .matches
        .iter()
        .filter(|m| m.field.ends_with(" dport") || m.field.ends_with(" sport"))
    {
        port_restricted = true;
        let hit = match resolved_values(table, m) {
            Some(values) => {
                values
                    .iter()
                    .any(|v| port_in(v, scope.port).unwrap_or(true))
                    != m.negated
            }
            None => true,
        };
        if hit {
            reasons.push(TouchReason::DnsPort);
        }
    }
    if port_restricted && reasons.is_empty() {
        return None;
    }
    let mut address_restricted = false;
    for m in rule
        .matches
        .iter()
        .filter(|m| m.field.ends_with(" daddr") || m.field.ends_with(" saddr"))
    {
        let Some(values) = resolved_values(table, m) else {
            address_restricted = true;
            continue;
        };
        let nets: Vec<IpNet> = values.iter().filter_map(|v| parse_value_net(v)).collect();
        if m.negated {
            if nets.iter().any(|n| !scope.escapes_negation(n)) {
                return None;
            }
            continue;
        }
        address_restricted = true;
        let mut found = Vec::new();
        for n in &nets {
            for r in scope.address_reasons(n) {
                if !found.contains(&r) {
                    found.push(r);
                }
            }
        }
        if found.is_empty() && !reasons.contains(&TouchReason::DnsPort) {
            return None;
        }
        for r in found {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
    }
    if rule.payload_match {
        reasons.push(TouchReason::PayloadMatch);
    }
    if !port_restricted && !address_restricted && !rule.payload_match {
        reasons.push(TouchReason::Unconditional);
    }
    Some(reasons)
}

fn conditions(rule: &NftRule) -> Vec<String> {
    rule.matches
        .iter()
        .filter(|m| {
            !(m.field.ends_with("port")
                || m.field.ends_with("addr")
                || matches!(
                    m.field.as_str(),
                    "meta l4proto" | "ip protocol" | "ip6 nexthdr"
                ))
        })
        .map(|m| {
            let op = if m.negated { " != " } else { " " };
            format!("{}{}{}", m.field, op, m.values.join(","))
        })
        .collect()
}
