//! Filtering rules in an `iptables-save` dump that DNS traffic could meet: the built-in
//! chains' policies and every DROP/REJECT in filter, raw and mangle that is reachable from a
//! built-in chain and not provably limited to other traffic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::firewall::{BlockVerdict, ChainPolicy, DnsScope, DnsTouchingRule, TouchReason};
use super::iptables::{IptablesSave, Rule, Table, Target};

/// Tables whose rules can drop packets.
const FILTERING_TABLES: [&str; 3] = ["filter", "raw", "mangle"];

/// Policies of filter INPUT/FORWARD/OUTPUT, plus any non-ACCEPT policy in raw or mangle.
pub fn chain_policies(save: &IptablesSave) -> Vec<ChainPolicy> {
    let mut out = Vec::new();
    for table in &save.tables {
        if !FILTERING_TABLES.contains(&table.name.as_str()) {
            continue;
        }
        for chain in &table.chains {
            let Some(policy) = &chain.policy else {
                continue;
            };
            let wanted = if table.name == "filter" {
                matches!(chain.name.as_str(), "INPUT" | "FORWARD" | "OUTPUT")
            } else {
                !policy.eq_ignore_ascii_case("ACCEPT")
            };
            if wanted {
                out.push(ChainPolicy {
                    table: table.name.clone(),
                    chain: chain.name.clone(),
                    policy: policy.clone(),
                    packets: chain.counters.map(|c| c.packets),
                });
            }
        }
    }
    out
}

/// Every DROP/REJECT rule in filter/raw/mangle, reachable from a built-in chain, that could
/// match DNS traffic as described by `scope`. Rule order (an ACCEPT earlier in the chain) is
/// not evaluated: this lists what could drop DNS, the caller weighs it with counters.
pub fn dns_touching_rules(save: &IptablesSave, scope: &DnsScope) -> Vec<DnsTouchingRule> {
    let mut out = Vec::new();
    for table in &save.tables {
        if !FILTERING_TABLES.contains(&table.name.as_str()) {
            continue;
        }
        let reach = reachability(table);
        for chain in &table.chains {
            let Some(from) = reach.get(chain.name.as_str()) else {
                continue;
            };
            for rule in &chain.rules {
                if let Some(found) = classify(rule, scope) {
                    out.push(DnsTouchingRule {
                        table: table.name.clone(),
                        chain: chain.name.clone(),
                        reached_from: from.iter().map(|s| s.to_string()).collect(),
                        verdict: found.0,
                        reasons: found.1,
                        conditions: conditions(rule),
                        comment: rule.comment().map(str::to_string),
                        text: rule.text.clone(),
                        line: rule.line,
                        packets: rule.counters.map(|c| c.packets),
                    });
                }
            }
        }
    }
    out
}

/// For every chain reachable from a built-in chain: the built-in chains it is reached from.
fn reachability(table: &Table) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut reach: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for root in table.chains.iter().filter(|c| c.is_builtin()) {
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
                if let Some(Target::Chain { name, .. }) = &rule.target {
                    queue.push_back(name.as_str());
                }
            }
        }
    }
    reach
}

fn classify(rule: &Rule, scope: &DnsScope) -> Option<(BlockVerdict, Vec<TouchReason>)> {
    let verdict = match &rule.target {
        Some(Target::Drop) => BlockVerdict::Drop,
        Some(Target::Reject { reject_with }) => BlockVerdict::Reject {
            with: reject_with.clone(),
        },
        _ => return None,
    };
    if let Some(p) = &rule.protocol {
        let named = matches!(p.value.as_str(), "udp" | "tcp" | "17" | "6");
        let any = matches!(p.value.as_str(), "all" | "0");
        // `! -p udp` still lets TCP DNS through, so only a positive other protocol excludes.
        if !p.negated && !named && !any {
            return None;
        }
    }
    let mut reasons = Vec::new();
    let mut port_restricted = false;
    for ports in [rule.destination_ports(), rule.source_ports()]
        .into_iter()
        .flatten()
    {
        port_restricted = true;
        if ports.value.contains(scope.port) != ports.negated {
            reasons.push(TouchReason::DnsPort);
        }
    }
    if port_restricted && reasons.is_empty() {
        return None;
    }
    let mut address_restricted = false;
    for addr in [&rule.source, &rule.destination].into_iter().flatten() {
        if addr.negated {
            if !scope.escapes_negation(&addr.value) {
                return None;
            }
            continue;
        }
        address_restricted = true;
        let found = scope.address_reasons(&addr.value);
        if found.is_empty() && !reasons.contains(&TouchReason::DnsPort) {
            // Limited to other addresses and not aimed at the DNS port.
            return None;
        }
        for r in found {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
    }
    if rule.has_payload_match() {
        reasons.push(TouchReason::PayloadMatch);
    }
    if !port_restricted && !address_restricted && !rule.has_payload_match() {
        reasons.push(TouchReason::Unconditional);
    }
    Some((verdict, reasons))
}

/// Matches the classification did not evaluate, written back in iptables syntax.
fn conditions(rule: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    for (flag, iface) in [("-i", &rule.in_interface), ("-o", &rule.out_interface)] {
        if let Some(i) = iface {
            let neg = if i.negated { "! " } else { "" };
            out.push(format!("{neg}{flag} {}", i.value));
        }
    }
    for m in &rule.matches {
        if matches!(
            m.module.as_str(),
            "comment" | "udp" | "tcp" | "multiport" | "sctp"
        ) {
            continue;
        }
        let mut text = format!("-m {}", m.module);
        for o in &m.options {
            if o.negated {
                text.push_str(" !");
            }
            text.push_str(" --");
            text.push_str(&o.name);
            for v in &o.values {
                text.push(' ');
                text.push_str(v);
            }
        }
        out.push(text);
    }
    out
}
