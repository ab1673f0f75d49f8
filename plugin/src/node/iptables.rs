//! Parser for `iptables-save` / `ip6tables-save` output (legacy and nft backends, with or
//! without `-c` counters).
//!
//! The parser is strict about the file's structure (`*table`, `:CHAIN POLICY [p:b]`, rules,
//! `COMMIT`) and lenient about rule contents: match modules and target options it has no
//! typed accessor for are kept as generic [`Match`]/[`OptionArg`] values, so a newer
//! iptables with new extensions still parses. It never panics, whatever the input.

use std::collections::HashSet;

use ipnet::IpNet;
use serde::Serialize;

/// A whole `iptables-save` dump: one entry per `*table` section, in file order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct IptablesSave {
    pub tables: Vec<Table>,
}

/// One `*table` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub name: String,
    pub chains: Vec<Chain>,
}

/// A chain with its rules in evaluation order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chain {
    pub name: String,
    /// `Some("ACCEPT")`/`Some("DROP")` for built-in chains, `None` for user chains (`-`).
    pub policy: Option<String>,
    /// Policy counters from `[packets:bytes]` on the chain line.
    pub counters: Option<Counters>,
    pub rules: Vec<Rule>,
}

/// Packet and byte counters, as printed by `iptables-save -c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A value that may be preceded by `!` in the rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Negatable<T> {
    pub negated: bool,
    pub value: T,
}

/// One `--option value...` of a match module or target; `name` is without the dashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptionArg {
    pub name: String,
    pub negated: bool,
    pub values: Vec<String>,
}

/// One `-m module --opt ...` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub module: String,
    pub options: Vec<OptionArg>,
}

impl Match {
    /// The first option called `name` (without dashes).
    pub fn option(&self, name: &str) -> Option<&OptionArg> {
        self.options.iter().find(|o| o.name == name)
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Accept,
    Drop,
    Return,
    Reject {
        reject_with: Option<String>,
    },
    /// `--to-destination` as written (`10.244.0.2:53`, `[fd00::2]:53`, ranges...).
    Dnat {
        to_destination: Option<String>,
    },
    Mark {
        options: Vec<OptionArg>,
    },
    Masquerade {
        options: Vec<OptionArg>,
    },
    /// `-j CHAIN` (`goto == false`) or `-g CHAIN` to a chain declared in the same table.
    Chain {
        name: String,
        goto: bool,
    },
    /// Any other extension target (LOG, SNAT, CT, NOTRACK, ...).
    Other {
        name: String,
        options: Vec<OptionArg>,
    },
}

/// A port set from `--dport`, `--dports`, ...: inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSet {
    pub ranges: Vec<(u16, u16)>,
}

impl PortSet {
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }
}

/// One `-A` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// 1-based line number in the dump.
    pub line: usize,
    pub chain: String,
    /// The rule as written, without the leading counters.
    pub text: String,
    pub counters: Option<Counters>,
    pub source: Option<Negatable<IpNet>>,
    pub destination: Option<Negatable<IpNet>>,
    /// Protocol as written (`udp`, `tcp`, `17`, `all`), lower-cased.
    pub protocol: Option<Negatable<String>>,
    pub in_interface: Option<Negatable<String>>,
    pub out_interface: Option<Negatable<String>>,
    pub matches: Vec<Match>,
    pub target: Option<Target>,
}

impl Rule {
    /// The first match block of `module`.
    pub fn find_match(&self, module: &str) -> Option<&Match> {
        self.matches.iter().find(|m| m.module == module)
    }

    /// The `-m comment --comment` text.
    pub fn comment(&self) -> Option<&str> {
        self.find_match("comment")
            .and_then(|m| m.option("comment"))
            .and_then(|o| o.values.first())
            .map(String::as_str)
    }

    /// Destination ports from `-m udp/tcp/sctp --dport` or `-m multiport --dports/--ports`.
    pub fn destination_ports(&self) -> Option<Negatable<PortSet>> {
        self.ports(
            &["dport", "destination-port"],
            &["dports", "destination-ports", "ports"],
        )
    }

    /// Source ports from `--sport` or `-m multiport --sports/--ports`.
    pub fn source_ports(&self) -> Option<Negatable<PortSet>> {
        self.ports(
            &["sport", "source-port"],
            &["sports", "source-ports", "ports"],
        )
    }

    fn ports(&self, single: &[&str], multi: &[&str]) -> Option<Negatable<PortSet>> {
        for m in &self.matches {
            let names: &[&str] = match m.module.as_str() {
                "udp" | "tcp" | "sctp" | "dccp" | "udplite" => single,
                "multiport" => multi,
                _ => continue,
            };
            for o in &m.options {
                if names.contains(&o.name.as_str()) {
                    let set = o.values.first().and_then(|v| parse_port_list(v))?;
                    return Some(Negatable {
                        negated: o.negated,
                        value: set,
                    });
                }
            }
        }
        None
    }

    /// `-m statistic --mode random --probability P`.
    pub fn random_probability(&self) -> Option<f64> {
        let m = self.find_match("statistic")?;
        let mode = m.option("mode")?.values.first()?;
        if mode != "random" {
            return None;
        }
        m.option("probability")?.values.first()?.parse().ok()
    }

    /// True for kube-proxy's session-affinity check (`-m recent --rcheck`).
    pub fn is_recent_check(&self) -> bool {
        self.matches.iter().any(|m| {
            m.module == "recent" && (m.option("rcheck").is_some() || m.option("update").is_some())
        })
    }

    /// True when the rule inspects packet payload (`-m string`, `-m u32`, `-m bpf`), the way
    /// hand-made AAAA or query-name filters are written.
    pub fn has_payload_match(&self) -> bool {
        self.matches
            .iter()
            .any(|m| matches!(m.module.as_str(), "string" | "u32" | "bpf"))
    }
}

impl IptablesSave {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

impl Chain {
    /// Built-in chains carry a policy; user chains do not.
    pub fn is_builtin(&self) -> bool {
        self.policy.is_some()
    }
}

/// Why a dump could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IptablesError {
    #[error("line {line}: `{text}` appears outside a `*table` section")]
    OutsideTable { line: usize, text: String },
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
}

/// Parses an `iptables-save` dump. Empty input is an empty ruleset (a node where the backend
/// has no tables loaded prints nothing).
pub fn parse_iptables_save(input: &str) -> Result<IptablesSave, IptablesError> {
    let mut save = IptablesSave::default();
    let mut current: Option<(Table, HashSet<String>)> = None;
    for (idx, raw) in input.lines().enumerate() {
        let line = idx + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if let Some(name) = text.strip_prefix('*') {
            if let Some((table, _)) = current.take() {
                save.tables.push(table);
            }
            current = Some((
                Table {
                    name: name.trim().to_string(),
                    chains: Vec::new(),
                },
                HashSet::new(),
            ));
            continue;
        }
        if text == "COMMIT" {
            match current.take() {
                Some((table, _)) => save.tables.push(table),
                None => {
                    return Err(IptablesError::OutsideTable {
                        line,
                        text: text.to_string(),
                    })
                }
            }
            continue;
        }
        let Some((table, declared)) = current.as_mut() else {
            return Err(IptablesError::OutsideTable {
                line,
                text: text.to_string(),
            });
        };
        if let Some(decl) = text.strip_prefix(':') {
            let chain = parse_chain_decl(decl, line)?;
            declared.insert(chain.name.clone());
            table.chains.push(chain);
            continue;
        }
        let rule = parse_rule(text, line, declared)?;
        match table.chains.iter_mut().find(|c| c.name == rule.chain) {
            Some(chain) => chain.rules.push(rule),
            None => {
                // iptables-save always declares chains first; accept a missing declaration
                // as a user chain rather than reject an otherwise readable dump.
                declared.insert(rule.chain.clone());
                table.chains.push(Chain {
                    name: rule.chain.clone(),
                    policy: None,
                    counters: None,
                    rules: vec![rule],
                });
            }
        }
    }
    if let Some((table, _)) = current.take() {
        save.tables.push(table);
    }
    Ok(save)
}

fn malformed(line: usize, reason: impl Into<String>) -> IptablesError {
    IptablesError::Malformed {
        line,
        reason: reason.into(),
    }
}

fn parse_chain_decl(decl: &str, line: usize) -> Result<Chain, IptablesError> {
    let mut parts = decl.split_whitespace();
    let name = parts
        .next()
        .ok_or_else(|| malformed(line, "chain declaration without a name"))?;
    let policy = parts.next().unwrap_or("-");
    let counters = match parts.next() {
        Some(c) => {
            Some(parse_counters(c).ok_or_else(|| malformed(line, format!("bad counters `{c}`")))?)
        }
        None => None,
    };
    Ok(Chain {
        name: name.to_string(),
        policy: (policy != "-").then(|| policy.to_string()),
        counters,
        rules: Vec::new(),
    })
}

fn parse_counters(text: &str) -> Option<Counters> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some(Counters {
        packets: p.trim().parse().ok()?,
        bytes: b.trim().parse().ok()?,
    })
}

#[derive(Debug, Clone)]
struct Token {
    text: String,
    quoted: bool,
}

/// Splits a rule line the way iptables-save quotes it: double quotes with backslash escapes.
fn tokenize(text: &str, line: usize) -> Result<Vec<Token>, IptablesError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut buf = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '"' {
                quoted = true;
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(e) => buf.push(e),
                            None => break,
                        },
                        other => buf.push(other),
                    }
                }
                if !closed {
                    return Err(malformed(line, "unterminated quote"));
                }
            } else {
                buf.push(c);
            }
        }
        tokens.push(Token { text: buf, quoted });
    }
    Ok(tokens)
}

fn is_option_name(t: &Token) -> bool {
    !t.quoted
        && t.text.len() > 1
        && t.text.starts_with('-')
        && !t.text[1..].starts_with(|c: char| c.is_ascii_digit())
}

enum Context {
    None,
    Match(usize),
    Target,
}

fn parse_rule(text: &str, line: usize, declared: &HashSet<String>) -> Result<Rule, IptablesError> {
    let (counters, rest) = if text.starts_with('[') {
        let end = text
            .find(']')
            .ok_or_else(|| malformed(line, "unterminated counters"))?;
        let c = parse_counters(&text[..=end]).ok_or_else(|| malformed(line, "bad counters"))?;
        (Some(c), text[end + 1..].trim_start())
    } else {
        (None, text)
    };
    let tokens = tokenize(rest, line)?;
    let mut it = tokens.into_iter().peekable();
    match it.next() {
        Some(t) if !t.quoted && (t.text == "-A" || t.text == "--append") => {}
        Some(t) => {
            return Err(malformed(
                line,
                format!("expected `-A`, found `{}`", t.text),
            ))
        }
        None => return Err(malformed(line, "empty rule")),
    }
    let chain = it
        .next()
        .map(|t| t.text)
        .ok_or_else(|| malformed(line, "`-A` without a chain name"))?;
    let mut rule = Rule {
        line,
        chain,
        text: rest.to_string(),
        counters,
        source: None,
        destination: None,
        protocol: None,
        in_interface: None,
        out_interface: None,
        matches: Vec::new(),
        target: None,
    };
    let mut target: Option<(String, bool, Vec<OptionArg>)> = None;
    let mut ctx = Context::None;
    let mut negate = false;
    while let Some(tok) = it.next() {
        if !tok.quoted && tok.text == "!" {
            negate = true;
            continue;
        }
        if !is_option_name(&tok) {
            return Err(malformed(line, format!("unexpected `{}`", tok.text)));
        }
        let mut value = |it: &mut std::iter::Peekable<std::vec::IntoIter<Token>>| {
            // Old syntax put `!` after the option name (`-s ! 10.0.0.0/8`).
            if it.peek().is_some_and(|t| !t.quoted && t.text == "!") {
                it.next();
                negate = true;
            }
            it.next()
                .map(|t| t.text)
                .ok_or_else(|| malformed(line, format!("`{}` without a value", tok.text)))
        };
        match tok.text.as_str() {
            "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                let v = value(&mut it)?;
                let net =
                    parse_net(&v).ok_or_else(|| malformed(line, format!("bad address `{v}`")))?;
                let m = Some(Negatable {
                    negated: negate,
                    value: net,
                });
                if tok.text.starts_with("-s") || tok.text.starts_with("--s") {
                    rule.source = m;
                } else {
                    rule.destination = m;
                }
            }
            "-p" | "--protocol" => {
                let v = value(&mut it)?;
                rule.protocol = Some(Negatable {
                    negated: negate,
                    value: v.to_ascii_lowercase(),
                });
            }
            "-i" | "--in-interface" => {
                let v = value(&mut it)?;
                rule.in_interface = Some(Negatable {
                    negated: negate,
                    value: v,
                });
            }
            "-o" | "--out-interface" => {
                let v = value(&mut it)?;
                rule.out_interface = Some(Negatable {
                    negated: negate,
                    value: v,
                });
            }
            "-f" | "--fragment" => {}
            "-c" | "--set-counters" => {
                let p = value(&mut it)?;
                let b = it.next().map(|t| t.text).unwrap_or_default();
                rule.counters = Some(Counters {
                    packets: p.parse().map_err(|_| malformed(line, "bad -c packets"))?,
                    bytes: b.parse().map_err(|_| malformed(line, "bad -c bytes"))?,
                });
            }
            "-m" | "--match" => {
                let v = value(&mut it)?;
                rule.matches.push(Match {
                    module: v,
                    options: Vec::new(),
                });
                ctx = Context::Match(rule.matches.len() - 1);
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let v = value(&mut it)?;
                target = Some((
                    v,
                    tok.text.starts_with("-g") || tok.text == "--goto",
                    Vec::new(),
                ));
                ctx = Context::Target;
            }
            name => {
                let mut values = Vec::new();
                if it.peek().is_some_and(|t| !t.quoted && t.text == "!") {
                    it.next();
                    negate = true;
                }
                while let Some(t) = it.peek() {
                    if is_option_name(t) || (!t.quoted && t.text == "!") {
                        break;
                    }
                    values.push(it.next().map(|t| t.text).unwrap_or_default());
                }
                let opt = OptionArg {
                    name: name.trim_start_matches('-').to_string(),
                    negated: negate,
                    values,
                };
                match ctx {
                    Context::Match(i) => rule.matches[i].options.push(opt),
                    Context::Target => {
                        if let Some((_, _, opts)) = target.as_mut() {
                            opts.push(opt);
                        }
                    }
                    Context::None => {
                        rule.matches.push(Match {
                            module: String::new(),
                            options: vec![opt],
                        });
                        ctx = Context::Match(rule.matches.len() - 1);
                    }
                }
            }
        }
        negate = false;
    }
    rule.target = target.map(|(name, goto, options)| build_target(name, goto, options, declared));
    Ok(rule)
}

fn first_value(options: &[OptionArg], name: &str) -> Option<String> {
    options
        .iter()
        .find(|o| o.name == name)
        .and_then(|o| o.values.first().cloned())
}

fn build_target(
    name: String,
    goto: bool,
    options: Vec<OptionArg>,
    declared: &HashSet<String>,
) -> Target {
    if goto || declared.contains(&name) {
        return Target::Chain { name, goto };
    }
    match name.as_str() {
        "ACCEPT" => Target::Accept,
        "DROP" => Target::Drop,
        "RETURN" => Target::Return,
        "REJECT" => Target::Reject {
            reject_with: first_value(&options, "reject-with"),
        },
        "DNAT" => Target::Dnat {
            to_destination: first_value(&options, "to-destination"),
        },
        "MARK" => Target::Mark { options },
        "MASQUERADE" => Target::Masquerade { options },
        _ => Target::Other { name, options },
    }
}

/// Parses `10.0.0.0/8`, `10.0.0.1` (a /32) or `10.0.0.0/255.0.0.0`.
pub fn parse_net(text: &str) -> Option<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some(IpNet::from(ip));
    }
    let (addr, mask) = text.split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let mask: std::net::IpAddr = mask.parse().ok()?;
    let prefix = match mask {
        std::net::IpAddr::V4(m) => ipnet::ipv4_mask_to_prefix(m).ok()?,
        std::net::IpAddr::V6(m) => ipnet::ipv6_mask_to_prefix(m).ok()?,
    };
    IpNet::new(addr, prefix).ok()
}

/// Parses `53`, `1000:2000` and multiport's `22,53,1000:2000`.
pub fn parse_port_list(text: &str) -> Option<PortSet> {
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let range = match part.split_once(':') {
            Some((lo, hi)) => {
                let lo = if lo.is_empty() { 0 } else { lo.parse().ok()? };
                let hi = if hi.is_empty() {
                    u16::MAX
                } else {
                    hi.parse().ok()?
                };
                (lo, hi)
            }
            None => {
                let p = part.parse().ok()?;
                (p, p)
            }
        };
        ranges.push(range);
    }
    Some(PortSet { ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_quotes_negation_and_targets() {
        let dump = "*nat\n:PREROUTING ACCEPT [3:180]\n:KUBE-SVC-X - [0:0]\n:KUBE-SEP-Y - [0:0]\n\
            [4:116] -A KUBE-SVC-X ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p udp -m comment --comment \"a \\\"quoted\\\" b\" -m udp --dport 53 -m statistic --mode random --probability 0.25 -j KUBE-SEP-Y\n\
            -A KUBE-SEP-Y -p udp -m udp -j DNAT --to-destination 10.244.0.2:53\n\
            -A PREROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\nCOMMIT\n";
        let save = parse_iptables_save(dump).unwrap();
        let nat = save.table("nat").unwrap();
        assert_eq!(
            nat.chain("PREROUTING").unwrap().counters,
            Some(Counters {
                packets: 3,
                bytes: 180
            })
        );
        let r = &nat.chain("KUBE-SVC-X").unwrap().rules[0];
        assert_eq!(
            r.counters,
            Some(Counters {
                packets: 4,
                bytes: 116
            })
        );
        assert!(r.source.as_ref().unwrap().negated);
        assert_eq!(
            r.destination.as_ref().unwrap().value,
            "10.96.0.10/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(r.comment(), Some("a \"quoted\" b"));
        assert!(r.destination_ports().unwrap().value.contains(53));
        assert_eq!(r.random_probability(), Some(0.25));
        assert_eq!(
            r.target,
            Some(Target::Chain {
                name: "KUBE-SEP-Y".into(),
                goto: false
            })
        );
        let sep = &nat.chain("KUBE-SEP-Y").unwrap().rules[0];
        assert_eq!(
            sep.target,
            Some(Target::Dnat {
                to_destination: Some("10.244.0.2:53".into())
            })
        );
        let ret = &nat.chain("PREROUTING").unwrap().rules[0];
        assert!(
            ret.find_match("mark")
                .unwrap()
                .option("mark")
                .unwrap()
                .negated
        );
        assert_eq!(ret.target, Some(Target::Return));
    }

    #[test]
    fn multiport_and_mask_forms() {
        assert!(parse_port_list("22,53,1000:2000").unwrap().contains(1500));
        assert!(!parse_port_list("22,54").unwrap().contains(53));
        assert_eq!(
            parse_net("10.0.0.0/255.0.0.0"),
            Some("10.0.0.0/8".parse().unwrap())
        );
    }

    #[test]
    fn structural_errors_are_reported_with_line_numbers() {
        assert!(matches!(
            parse_iptables_save("-A INPUT -j DROP\n"),
            Err(IptablesError::OutsideTable { line: 1, .. })
        ));
        assert!(matches!(
            parse_iptables_save("*filter\n-A INPUT -m comment --comment \"open\n"),
            Err(IptablesError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            parse_iptables_save("*filter\n-A INPUT -s not-an-ip -j DROP\n"),
            Err(IptablesError::Malformed { line: 2, .. })
        ));
        assert_eq!(parse_iptables_save("").unwrap(), IptablesSave::default());
    }
}
