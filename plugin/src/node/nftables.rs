//! Parser for `nft list ruleset` text output (with or without `-a` handles).
//!
//! Tables, chains (with hook, priority and policy), rules and sets/maps with their elements
//! are read; rules are kept as tokens plus the few typed facts the readers need (verdict,
//! counter, comment, simple matches). Other objects (flowtables, named counters, quotas, ct
//! helpers) are skipped. Strict about braces, lenient about statements; never panics.

use serde::Serialize;

/// A whole ruleset.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NftRuleset {
    pub tables: Vec<NftTable>,
}

impl NftRuleset {
    /// The table `family name` (e.g. `ip`, `kube-proxy`).
    pub fn table(&self, family: &str, name: &str) -> Option<&NftTable> {
        self.tables
            .iter()
            .find(|t| t.family == family && t.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftTable {
    /// `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub family: String,
    pub name: String,
    pub comment: Option<String>,
    pub chains: Vec<NftChain>,
    pub sets: Vec<NftSet>,
}

impl NftTable {
    pub fn chain(&self, name: &str) -> Option<&NftChain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn set(&self, name: &str) -> Option<&NftSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// `family name`, the way nft names a table.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.family, self.name)
    }
}

/// A base chain's hook line: `type filter hook input priority filter; policy accept;`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftHook {
    /// `filter`, `nat`, `route`.
    pub kind: String,
    pub hook: String,
    /// As printed: `filter`, `dstnat - 10`, `-110`.
    pub priority: String,
    /// `accept` or `drop`; `None` when not printed.
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftChain {
    pub name: String,
    pub hook: Option<NftHook>,
    pub comment: Option<String>,
    pub rules: Vec<NftRule>,
}

/// A set (`is_map == false`) or map with its elements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftSet {
    pub name: String,
    pub is_map: bool,
    /// Key type, e.g. `ipv4_addr . inet_proto . inet_service`.
    pub key_type: String,
    /// Data type of a map, e.g. `verdict`.
    pub data_type: Option<String>,
    pub comment: Option<String>,
    pub elements: Vec<NftElement>,
}

/// One element; `key` and `value` are the tokens joined by single spaces
/// (`10.96.0.10 . udp . 53`, `goto service-...`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftElement {
    pub key: String,
    pub value: Option<String>,
    pub comment: Option<String>,
}

/// The terminal statement of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NftVerdict {
    Accept,
    Drop,
    Return,
    Continue,
    Reject {
        with: Option<String>,
    },
    Jump {
        chain: String,
    },
    Goto {
        chain: String,
    },
    /// `dnat [ip|ip6] to ADDR`.
    Dnat {
        to: String,
    },
    /// `vmap @name`.
    NamedVmap {
        map: String,
    },
    /// `vmap { key : verdict, ... }` as (key, verdict text) pairs.
    Vmap {
        entries: Vec<(String, String)>,
    },
    /// Anything else that ends a rule (masquerade, snat, redirect, queue, notrack...).
    Other {
        statement: String,
    },
}

/// A simple match `FIELD [op] VALUE|{ VALUES }`, e.g. `udp dport 53`, `ip daddr != @set`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftMatch {
    /// `udp dport`, `ip daddr`, `meta l4proto`, `ct state`, ...
    pub field: String,
    /// True for `!=`.
    pub negated: bool,
    /// Values; a named set is kept as `@name`.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftRule {
    /// 1-based line in the dump.
    pub line: usize,
    /// The rule as printed, without a trailing `# handle N`.
    pub text: String,
    pub handle: Option<u64>,
    pub comment: Option<String>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub verdict: Option<NftVerdict>,
    pub matches: Vec<NftMatch>,
    /// True when the rule reads raw payload (`@th,...`, `@nh,...`) or an xt `string`/`u32`.
    pub payload_match: bool,
}

/// Why a ruleset could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NftError {
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("unexpected end of input inside {what}")]
    Unterminated { what: String },
}

#[derive(Debug, Clone, PartialEq)]
struct Tok {
    text: String,
    quoted: bool,
}

impl Tok {
    fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

fn lex(line: &str, lineno: usize) -> Result<(Vec<Tok>, Option<u64>), NftError> {
    let mut toks = Vec::new();
    let mut handle = None;
    let mut chars = line.chars().peekable();
    let mut cur = String::new();
    let flush = |cur: &mut String, toks: &mut Vec<Tok>| {
        if !cur.is_empty() {
            toks.push(Tok {
                text: std::mem::take(cur),
                quoted: false,
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                flush(&mut cur, &mut toks);
                let mut s = String::new();
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        other => s.push(other),
                    }
                }
                if !closed {
                    return Err(NftError::Malformed {
                        line: lineno,
                        reason: "unterminated quote".into(),
                    });
                }
                toks.push(Tok {
                    text: s,
                    quoted: true,
                });
            }
            '#' => {
                // `nft -a` appends `# handle N`; anything after `#` is a comment.
                flush(&mut cur, &mut toks);
                let rest: String = chars.by_ref().collect();
                let mut words = rest.split_whitespace();
                if words.next() == Some("handle") {
                    handle = words.next().and_then(|h| h.parse().ok());
                }
            }
            '{' | '}' | ',' | ';' => {
                flush(&mut cur, &mut toks);
                toks.push(Tok {
                    text: c.to_string(),
                    quoted: false,
                });
            }
            c if c.is_whitespace() => flush(&mut cur, &mut toks),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut toks);
    Ok((toks, handle))
}

fn join(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| {
            if t.quoted {
                format!("\"{}\"", t.text)
            } else {
                t.text.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

enum State {
    Top,
    Table,
    Chain,
    Set { elements: Option<(Vec<Tok>, i32)> },
    Other { depth: i32 },
}

/// Parses `nft list ruleset` output. Empty input is an empty ruleset.
pub fn parse_nft_ruleset(input: &str) -> Result<NftRuleset, NftError> {
    let mut rs = NftRuleset::default();
    let mut state = State::Top;
    for (idx, raw) in input.lines().enumerate() {
        let lineno = idx + 1;
        let (toks, handle) = lex(raw, lineno)?;
        if toks.is_empty() {
            continue;
        }
        let bad = |reason: String| NftError::Malformed {
            line: lineno,
            reason,
        };
        state = match state {
            State::Top => {
                if toks[0].is("table") && toks.len() >= 4 && toks[3].is("{") {
                    rs.tables.push(NftTable {
                        family: toks[1].text.clone(),
                        name: toks[2].text.clone(),
                        comment: None,
                        chains: Vec::new(),
                        sets: Vec::new(),
                    });
                    State::Table
                } else if toks[0].is("table") && toks.len() == 3 {
                    // `table ip x` without a body does not occur in `list ruleset`, but an
                    // `nft list tables` line is harmless.
                    State::Top
                } else {
                    return Err(bad(format!("expected `table`, found `{}`", join(&toks))));
                }
            }
            State::Table => {
                let Some(table) = rs.tables.last_mut() else {
                    return Err(bad("table body without a table".into()));
                };
                let opens = toks.last().is_some_and(|t| t.is("{"));
                if toks[0].is("}") {
                    State::Top
                } else if toks[0].is("chain") && opens && toks.len() >= 3 {
                    table.chains.push(NftChain {
                        name: toks[1].text.clone(),
                        hook: None,
                        comment: None,
                        rules: Vec::new(),
                    });
                    State::Chain
                } else if (toks[0].is("set") || toks[0].is("map")) && opens && toks.len() >= 3 {
                    table.sets.push(NftSet {
                        name: toks[1].text.clone(),
                        is_map: toks[0].is("map"),
                        key_type: String::new(),
                        data_type: None,
                        comment: None,
                        elements: Vec::new(),
                    });
                    State::Set { elements: None }
                } else if opens {
                    State::Other {
                        depth: brace_delta(&toks),
                    }
                } else {
                    if toks[0].is("comment") {
                        table.comment = toks.get(1).map(|t| t.text.clone());
                    }
                    State::Table
                }
            }
            State::Chain => {
                let chain = rs
                    .tables
                    .last_mut()
                    .and_then(|t| t.chains.last_mut())
                    .ok_or_else(|| bad("chain body without a chain".into()))?;
                if toks[0].is("}") && toks.len() == 1 {
                    State::Table
                } else {
                    if toks[0].is("type") && toks.iter().any(|t| t.is("hook")) {
                        chain.hook = Some(parse_hook(&toks));
                    } else if toks[0].is("comment") && toks.len() == 2 && chain.rules.is_empty() {
                        chain.comment = Some(toks[1].text.clone());
                    } else if toks[0].is("policy") {
                        if let Some(h) = chain.hook.as_mut() {
                            h.policy = toks.get(1).map(|t| t.text.clone());
                        }
                    } else if toks[0].is("devices") {
                        // netdev base chains list their devices; nothing to judge.
                    } else {
                        chain.rules.push(parse_rule(&toks, lineno, handle));
                    }
                    State::Chain
                }
            }
            State::Set { elements } => {
                let set = rs
                    .tables
                    .last_mut()
                    .and_then(|t| t.sets.last_mut())
                    .ok_or_else(|| bad("set body without a set".into()))?;
                match elements {
                    Some((mut acc, depth)) => {
                        let depth = depth + brace_delta(&toks);
                        acc.extend(toks);
                        if depth <= 0 {
                            set.elements = parse_elements(&acc);
                            State::Set { elements: None }
                        } else {
                            State::Set {
                                elements: Some((acc, depth)),
                            }
                        }
                    }
                    None if toks[0].is("}") => State::Table,
                    None if toks[0].is("elements") => {
                        let start = toks.iter().position(|t| t.is("{")).unwrap_or(toks.len());
                        let acc: Vec<Tok> = toks[start..].to_vec();
                        let depth = brace_delta(&acc);
                        if depth <= 0 {
                            set.elements = parse_elements(&acc);
                            State::Set { elements: None }
                        } else {
                            State::Set {
                                elements: Some((acc, depth)),
                            }
                        }
                    }
                    None => {
                        if toks[0].is("type") || toks[0].is("typeof") {
                            let rest = &toks[1..];
                            match rest.iter().position(|t| t.is(":")) {
                                Some(p) => {
                                    set.key_type = join(&rest[..p]);
                                    set.data_type = Some(join(&rest[p + 1..]));
                                }
                                None => set.key_type = join(rest),
                            }
                        } else if toks[0].is("comment") {
                            set.comment = toks.get(1).map(|t| t.text.clone());
                        }
                        State::Set { elements: None }
                    }
                }
            }
            State::Other { depth } => {
                let depth = depth + brace_delta(&toks);
                if depth <= 0 {
                    State::Table
                } else {
                    State::Other { depth }
                }
            }
        };
    }
    match state {
        State::Top => Ok(rs),
        State::Table => Err(NftError::Unterminated {
            what: "a table".into(),
        }),
        State::Chain => Err(NftError::Unterminated {
            what: "a chain".into(),
        }),
        State::Set { .. } => Err(NftError::Unterminated {
            what: "a set".into(),
        }),
        State::Other { .. } => Err(NftError::Unterminated {
            what: "an object".into(),
        }),
    }
}

fn brace_delta(toks: &[Tok]) -> i32 {
    toks.iter()
        .map(|t| {
            if t.is("{") {
                1
            } else if t.is("}") {
                -1
            } else {
                0
            }
        })
        .sum()
}

fn parse_hook(toks: &[Tok]) -> NftHook {
    let after = |word: &str| {
        toks.iter()
            .position(|t| t.is(word))
            .and_then(|i| toks.get(i + 1))
            .map(|t| t.text.clone())
    };
    let priority = toks
        .iter()
        .position(|t| t.is("priority"))
        .map(|i| {
            let end = toks[i + 1..]
                .iter()
                .position(|t| t.is(";"))
                .map_or(toks.len(), |p| i + 1 + p);
            join(&toks[i + 1..end])
        })
        .unwrap_or_default();
    NftHook {
        kind: after("type").unwrap_or_default(),
        hook: after("hook").unwrap_or_default(),
        priority,
        policy: after("policy"),
    }
}

/// Splits `{ a, b : c, d comment "x" : e }` into elements.
fn parse_elements(toks: &[Tok]) -> Vec<NftElement> {
    let inner = match (toks.first(), toks.iter().rposition(|t| t.is("}"))) {
        (Some(f), Some(end)) if f.is("{") && end > 0 => &toks[1..end],
        _ => toks,
    };
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, t) in inner.iter().enumerate() {
        if t.is("{") {
            depth += 1;
        } else if t.is("}") {
            depth -= 1;
        } else if t.is(",") && depth == 0 {
            out.extend(parse_element(&inner[start..i]));
            start = i + 1;
        }
    }
    out.extend(parse_element(&inner[start..]));
    out
}

fn parse_element(toks: &[Tok]) -> Option<NftElement> {
    if toks.is_empty() {
        return None;
    }
    let (key_part, value) = match toks.iter().position(|t| t.is(":")) {
        Some(p) => (&toks[..p], Some(join(&toks[p + 1..]))),
        None => (toks, None),
    };
    let mut key = Vec::new();
    let mut comment = None;
    let mut i = 0;
    while i < key_part.len() {
        let t = &key_part[i];
        if t.is("comment") {
            comment = key_part.get(i + 1).map(|c| c.text.clone());
            i += 2;
        } else if t.is("timeout") || t.is("expires") {
            i += 2;
        } else if t.is("counter") {
            // `counter packets N bytes M`
            i += 5;
        } else {
            key.push(t.clone());
            i += 1;
        }
    }
    Some(NftElement {
        key: join(&key),
        value,
        comment,
    })
}

/// Protocol and field words that start a simple match.
const MATCH_PREFIXES: [&str; 14] = [
    "ip", "ip6", "udp", "tcp", "th", "sctp", "meta", "ct", "iif", "oif", "iifname", "oifname",
    "icmp", "icmpv6",
];

fn parse_rule(toks: &[Tok], line: usize, handle: Option<u64>) -> NftRule {
    let mut rule = NftRule {
        line,
        text: join(toks),
        handle,
        comment: None,
        packets: None,
        bytes: None,
        verdict: None,
        matches: Vec::new(),
        payload_match: false,
    };
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.quoted {
            i += 1;
            continue;
        }
        let next = toks.get(i + 1);
        match t.text.as_str() {
            "comment" => {
                rule.comment = next.map(|n| n.text.clone());
                i += 2;
            }
            "counter" => {
                let num = |k: usize| toks.get(i + k).and_then(|x| x.text.parse::<u64>().ok());
                if toks.get(i + 1).is_some_and(|x| x.is("packets")) {
                    rule.packets = num(2);
                    rule.bytes = num(4);
                    i += 5;
                } else {
                    i += 1;
                }
            }
            "accept" | "drop" | "return" | "continue" => {
                rule.verdict = Some(match t.text.as_str() {
                    "accept" => NftVerdict::Accept,
                    "drop" => NftVerdict::Drop,
                    "return" => NftVerdict::Return,
                    _ => NftVerdict::Continue,
                });
                i += 1;
            }
            "reject" => {
                let with = if next.is_some_and(|n| n.is("with")) {
                    let end = toks[i + 2..]
                        .iter()
                        .position(|x| x.is("comment"))
                        .map_or(toks.len(), |p| i + 2 + p);
                    Some(join(&toks[i + 2..end]))
                } else {
                    None
                };
                rule.verdict = Some(NftVerdict::Reject { with });
                i += 1;
            }
            "jump" | "goto" => {
                if let Some(n) = next {
                    let chain = n.text.clone();
                    rule.verdict = Some(if t.text == "jump" {
                        NftVerdict::Jump { chain }
                    } else {
                        NftVerdict::Goto { chain }
                    });
                }
                i += 2;
            }
            "dnat" => {
                let to = toks[i + 1..]
                    .iter()
                    .position(|x| x.is("to"))
                    .map(|p| i + 1 + p);
                if let Some(to) = to.and_then(|p| toks.get(p + 1)) {
                    rule.verdict = Some(NftVerdict::Dnat {
                        to: to.text.clone(),
                    });
                }
                i += 1;
            }
            "vmap" => {
                if let Some(n) = next {
                    if let Some(map) = n.text.strip_prefix('@') {
                        rule.verdict = Some(NftVerdict::NamedVmap {
                            map: map.to_string(),
                        });
                        i += 2;
                    } else if n.is("{") {
                        let (block, end) = braced(toks, i + 1);
                        let entries = parse_elements(block)
                            .into_iter()
                            .map(|e| (e.key, e.value.unwrap_or_default()))
                            .collect();
                        rule.verdict = Some(NftVerdict::Vmap { entries });
                        i = end;
                    } else {
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            }
            "masquerade" | "snat" | "redirect" | "queue" | "notrack" => {
                rule.verdict = Some(NftVerdict::Other {
                    statement: t.text.clone(),
                });
                i += 1;
            }
            "xt" => {
                // iptables-nft rules nft cannot translate print as `xt match "string"`.
                if toks
                    .get(i + 2)
                    .is_some_and(|x| matches!(x.text.as_str(), "string" | "u32" | "bpf"))
                {
                    rule.payload_match = true;
                }
                i += 1;
            }
            w if w.starts_with('@') && w.contains(',') => {
                rule.payload_match = true;
                i += 1;
            }
            w if MATCH_PREFIXES.contains(&w) => {
                i = parse_match(toks, i, &mut rule);
            }
            _ => i += 1,
        }
    }
    rule
}

/// Returns the tokens inside the brace block starting at `open` and the index after it.
fn braced(toks: &[Tok], open: usize) -> (&[Tok], usize) {
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(open) {
        if t.is("{") {
            depth += 1;
        } else if t.is("}") {
            depth -= 1;
            if depth == 0 {
                return (&toks[open..=k], k + 1);
            }
        }
    }
    (&toks[open..], toks.len())
}

const OPERATORS: [&str; 6] = ["==", "!=", "<", ">", "<=", ">="];

fn parse_match(toks: &[Tok], start: usize, rule: &mut NftRule) -> usize {
    let Some(field_tok) = toks.get(start + 1).filter(|t| !t.quoted) else {
        return start + 1;
    };
    let field = format!("{} {}", toks[start].text, field_tok.text);
    let mut i = start + 2;
    // A concatenation (`ip daddr . meta l4proto . th dport vmap @x`) is a map lookup, not
    // a simple match.
    if toks.get(i).is_some_and(|t| t.is(".")) {
        while i < toks.len() && !toks[i].is("vmap") && !toks[i].is("@") {
            i += 1;
        }
        return i;
    }
    let mut negated = false;
    if let Some(op) = toks
        .get(i)
        .filter(|t| OPERATORS.contains(&t.text.as_str()) && !t.quoted)
    {
        negated = op.text == "!=";
        i += 1;
    }
    let Some(value) = toks.get(i) else {
        return i;
    };
    if value.quoted || is_keyword(&value.text) {
        // `ct state new` style words are values; statement keywords are not.
        if value.quoted {
            rule.matches.push(NftMatch {
                field,
                negated,
                values: vec![value.text.clone()],
            });
            return i + 1;
        }
        return i;
    }
    if value.is("{") {
        let (block, end) = braced(toks, i);
        let values = block
            .iter()
            .filter(|t| !t.is("{") && !t.is("}") && !t.is(","))
            .map(|t| t.text.clone())
            .collect();
        rule.matches.push(NftMatch {
            field,
            negated,
            values,
        });
        return end;
    }
    let mut values = vec![value.text.clone()];
    // `ct state related,established` lexes as `related , established`.
    let mut j = i + 1;
    while toks.get(j).is_some_and(|t| t.is(",")) {
        if let Some(v) = toks.get(j + 1) {
            values.push(v.text.clone());
        }
        j += 2;
    }
    rule.matches.push(NftMatch {
        field,
        negated,
        values,
    });
    j
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "accept"
            | "drop"
            | "reject"
            | "return"
            | "jump"
            | "goto"
            | "counter"
            | "vmap"
            | "comment"
            | "dnat"
            | "snat"
            | "masquerade"
            | "log"
            | "set"
    )
}

impl NftRule {
    /// The first match on `field` (e.g. `udp dport`).
    pub fn find_match(&self, field: &str) -> Option<&NftMatch> {
        self.matches.iter().find(|m| m.field == field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_chains_sets_and_rules() {
        let text = "table inet f { # handle 3\n\tcomment \"x\"\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1,\n\t\t\t     10.0.0.2 }\n\t}\n\
            \tchain forward { # handle 1\n\t\ttype filter hook forward priority filter; policy drop;\n\
            \t\tip daddr 10.244.0.0/24 udp dport 53 counter packets 7 bytes 420 drop comment \"dns\" # handle 5\n\
            \t\tmeta l4proto { tcp, udp } th dport != { 53, 853 } reject with icmpx admin-prohibited\n\
            \t\tct state established,related accept\n\t}\n}\n";
        let rs = parse_nft_ruleset(text).unwrap();
        let t = rs.table("inet", "f").unwrap();
        assert_eq!(t.comment.as_deref(), Some("x"));
        assert_eq!(t.set("s").unwrap().elements.len(), 2);
        let c = t.chain("forward").unwrap();
        let hook = c.hook.as_ref().unwrap();
        assert_eq!(
            (hook.hook.as_str(), hook.policy.as_deref()),
            ("forward", Some("drop"))
        );
        let r = &c.rules[0];
        assert_eq!(r.handle, Some(5));
        assert_eq!((r.packets, r.bytes), (Some(7), Some(420)));
        assert_eq!(r.verdict, Some(NftVerdict::Drop));
        assert_eq!(r.comment.as_deref(), Some("dns"));
        assert_eq!(r.find_match("udp dport").unwrap().values, vec!["53"]);
        assert_eq!(
            r.find_match("ip daddr").unwrap().values,
            vec!["10.244.0.0/24"]
        );
        let r = &c.rules[1];
        assert!(r.find_match("th dport").unwrap().negated);
        assert_eq!(
            r.find_match("meta l4proto").unwrap().values,
            vec!["tcp", "udp"]
        );
        assert_eq!(
            r.verdict,
            Some(NftVerdict::Reject {
                with: Some("icmpx admin-prohibited".into())
            })
        );
        assert_eq!(
            c.rules[2].find_match("ct state").unwrap().values,
            vec!["established", "related"]
        );
    }

    #[test]
    fn unbalanced_input_is_an_error() {
        assert!(parse_nft_ruleset("table ip t {\n chain c {\n").is_err());
        assert!(parse_nft_ruleset("chain c {\n}\n").is_err());
        assert_eq!(parse_nft_ruleset("\n").unwrap(), NftRuleset::default());
    }
}
