//! Parser for the CoreDNS Corefile (Caddyfile syntax): server blocks with their zones and
//! ports, plugins with arguments and nested blocks, and typed views of the plugins the
//! diagnosis needs (forward, cache, kubernetes, loop).
//!
//! Comments (`#` to the end of the line) and quoting (`"..."` with backslash escapes,
//! `` `...` `` raw) are handled. Environment placeholders (`{$VAR}`) and `import` lines are
//! kept as written; snippets (`(name) { ... }`) are recorded by name and not expanded.

use std::net::IpAddr;

use serde::Serialize;

/// A whole Corefile.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Corefile {
    pub server_blocks: Vec<ServerBlock>,
    /// Names of snippet definitions (`(name) { ... }`).
    pub snippets: Vec<String>,
}

/// One `zone:port ... { ... }` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerBlock {
    pub line: usize,
    pub keys: Vec<ServerKey>,
    pub plugins: Vec<Directive>,
}

/// One server block key, e.g. `.:53`, `cluster.local:53`, `tls://.:853`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerKey {
    pub raw: String,
    /// `dns`, `tls`, `https`, `grpc`, `quic`.
    pub transport: String,
    /// Zone, normalised to end with a dot (`.`, `cluster.local.`).
    pub zone: String,
    /// Port; the transport's default when not written (53 for dns, 853 for tls, 443 for https).
    pub port: Option<u16>,
}

/// A plugin line (or a line inside a plugin's block) with its own nested block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Directive {
    pub line: usize,
    pub name: String,
    pub args: Vec<String>,
    pub block: Vec<Directive>,
}

/// Why a Corefile could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorefileError {
    #[error("line {line}: unterminated quote")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: `}}` without a matching `{{`")]
    UnexpectedClose { line: usize },
    #[error("line {line}: block opened here is never closed")]
    Unclosed { line: usize },
    #[error("line {line}: server block keys `{keys}` are not followed by `{{`")]
    MissingBlock { line: usize, keys: String },
    #[error("line {line}: bad server block key `{key}`")]
    BadKey { line: usize, key: String },
    #[error("line {line}: blocks nested deeper than {MAX_DEPTH} levels")]
    TooDeep { line: usize },
}

/// Deepest nesting accepted; real Corefiles use two or three levels, and a bound keeps
/// hostile input from exhausting the stack.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    line: usize,
    quoted: bool,
}

impl Tok {
    fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

fn tokenize(input: &str) -> Result<Vec<Tok>, CorefileError> {
    let mut toks = Vec::new();
    let mut line = 1;
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == '\n' {
            line += 1;
            chars.next();
            continue;
        }
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            while chars.peek().is_some_and(|&c| c != '\n') {
                chars.next();
            }
            continue;
        }
        let start = line;
        let mut text = String::new();
        let mut quoted = false;
        if c == '"' || c == '`' {
            chars.next();
            quoted = true;
            let mut closed = false;
            while let Some(q) = chars.next() {
                if q == '\n' {
                    line += 1;
                }
                if q == c {
                    closed = true;
                    break;
                }
                if q == '\\' && c == '"' {
                    match chars.next() {
                        Some(e) => text.push(e),
                        None => break,
                    }
                    continue;
                }
                text.push(q);
            }
            if !closed {
                return Err(CorefileError::UnterminatedQuote { line: start });
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                text.push(c);
                chars.next();
            }
        }
        toks.push(Tok {
            text,
            line: start,
            quoted,
        });
    }
    Ok(toks)
}

/// Parses a Corefile.
pub fn parse_corefile(input: &str) -> Result<Corefile, CorefileError> {
    let toks = tokenize(input)?;
    let mut cf = Corefile::default();
    let mut i = 0;
    while i < toks.len() {
        let line = toks[i].line;
        if toks[i].is("}") {
            return Err(CorefileError::UnexpectedClose { line });
        }
        // Keys run to the `{` on the same line.
        let mut keys = Vec::new();
        while i < toks.len() && toks[i].line == line && !toks[i].is("{") {
            keys.push(toks[i].clone());
            i += 1;
        }
        if i >= toks.len() || !toks[i].is("{") || toks[i].line != line {
            return Err(CorefileError::MissingBlock {
                line,
                keys: keys
                    .iter()
                    .map(|t| t.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        i += 1;
        let (plugins, next) = parse_block(&toks, i, line, 1)?;
        i = next;
        if let [only] = keys.as_slice() {
            if let Some(name) = only
                .text
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
            {
                cf.snippets.push(name.to_string());
                continue;
            }
        }
        let mut parsed = Vec::new();
        for k in &keys {
            for part in k.text.split(',').filter(|p| !p.is_empty()) {
                parsed.push(parse_key(part).ok_or_else(|| CorefileError::BadKey {
                    line,
                    key: part.to_string(),
                })?);
            }
        }
        cf.server_blocks.push(ServerBlock {
            line,
            keys: parsed,
            plugins,
        });
    }
    Ok(cf)
}

/// Parses directives from `start` up to the matching `}`; returns them and the index after it.
fn parse_block(
    toks: &[Tok],
    start: usize,
    open_line: usize,
    depth: usize,
) -> Result<(Vec<Directive>, usize), CorefileError> {
    if depth > MAX_DEPTH {
        return Err(CorefileError::TooDeep { line: open_line });
    }
    let mut out = Vec::new();
    let mut i = start;
    while i < toks.len() {
        if toks[i].is("}") {
            return Ok((out, i + 1));
        }
        let line = toks[i].line;
        let name = toks[i].text.clone();
        i += 1;
        let mut args = Vec::new();
        let mut block = Vec::new();
        while i < toks.len() && toks[i].line == line {
            if toks[i].is("{") {
                let (inner, next) = parse_block(toks, i + 1, line, depth + 1)?;
                block = inner;
                i = next;
                break;
            }
            if toks[i].is("}") {
                break;
            }
            args.push(toks[i].text.clone());
            i += 1;
        }
        out.push(Directive {
            line,
            name,
            args,
            block,
        });
    }
    Err(CorefileError::Unclosed { line: open_line })
}

fn parse_key(raw: &str) -> Option<ServerKey> {
    let (transport, rest) = match raw.split_once("://") {
        Some((t, r)) => (t.to_ascii_lowercase(), r),
        None => ("dns".to_string(), raw),
    };
    // IPv6 reverse zones do not contain ':'; a key is `zone[:port]`.
    let (zone, port) = match rest.rsplit_once(':') {
        Some((z, p)) => (z, Some(p.parse::<u16>().ok()?)),
        None => (rest, None),
    };
    let zone = if zone.is_empty() || zone == "." {
        ".".to_string()
    } else {
        format!("{}.", zone.trim_end_matches('.').to_ascii_lowercase())
    };
    let default_port = match transport.as_str() {
        "dns" => Some(53),
        "tls" => Some(853),
        "https" | "grpc" => Some(443),
        _ => None,
    };
    Some(ServerKey {
        raw: raw.to_string(),
        transport,
        zone,
        port: port.or(default_port),
    })
}

impl ServerBlock {
    /// The first plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Directive> {
        self.plugins.iter().find(|d| d.name == name)
    }

    pub fn has_plugin(&self, name: &str) -> bool {
        self.plugin(name).is_some()
    }

    /// True when the block serves the root zone (`.`), i.e. every name not served by a more
    /// specific block.
    pub fn serves_root(&self) -> bool {
        self.keys.iter().any(|k| k.zone == ".")
    }

    /// The `forward` plugin, typed.
    pub fn forward(&self) -> Option<Forward> {
        self.plugin("forward").map(Forward::from_directive)
    }

    /// The `cache` plugin, typed.
    pub fn cache(&self) -> Option<Cache> {
        self.plugin("cache").map(Cache::from_directive)
    }

    /// Zones of the `kubernetes` plugin (normalised with a trailing dot); when none are
    /// written the server block's zones apply.
    pub fn kubernetes_zones(&self) -> Option<Vec<String>> {
        self.plugin("kubernetes").map(|d| {
            if d.args.is_empty() {
                self.keys.iter().map(|k| k.zone.clone()).collect()
            } else {
                d.args.iter().map(|z| normalise_zone(z)).collect()
            }
        })
    }
}

fn normalise_zone(z: &str) -> String {
    if z == "." {
        ".".to_string()
    } else {
        format!("{}.", z.trim_end_matches('.').to_ascii_lowercase())
    }
}

/// One `forward` destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ForwardTarget {
    /// `10.0.0.1`, `10.0.0.1:5353`, `dns://10.0.0.1`, `[2001:db8::1]:53`.
    Address { ip: IpAddr, port: u16 },
    /// `tls://9.9.9.9` (DNS over TLS, port 853 by default).
    Tls { ip: IpAddr, port: u16 },
    /// A resolv.conf-style file whose nameservers are used (`/etc/resolv.conf`): on a pod that
    /// is the node's resolver, which can loop back to CoreDNS.
    ResolvConf { path: String },
    /// Anything else, as written (env placeholders, hostnames).
    Other { raw: String },
}

/// `forward FROM TO... { options }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forward {
    pub from: String,
    pub to: Vec<ForwardTarget>,
    /// Nested options (`max_concurrent 1000`, `policy sequential`, `except ...`).
    pub options: Vec<Directive>,
}

impl Forward {
    fn from_directive(d: &Directive) -> Forward {
        Forward {
            from: d.args.first().cloned().unwrap_or_default(),
            to: d
                .args
                .iter()
                .skip(1)
                .map(|t| parse_forward_target(t))
                .collect(),
            options: d.block.clone(),
        }
    }
}

/// Parses one forward TO argument.
pub fn parse_forward_target(raw: &str) -> ForwardTarget {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), raw),
    };
    if scheme.is_empty() && rest.starts_with('/') {
        return ForwardTarget::ResolvConf {
            path: rest.to_string(),
        };
    }
    let default_port = if scheme == "tls" { 853 } else { 53 };
    let addr = if let Ok(ip) = rest.parse::<IpAddr>() {
        Some((ip, default_port))
    } else if let Ok(sa) = rest.parse::<std::net::SocketAddr>() {
        Some((sa.ip(), sa.port()))
    } else {
        None
    };
    match (scheme.as_str(), addr) {
        ("tls", Some((ip, port))) => ForwardTarget::Tls { ip, port },
        ("" | "dns", Some((ip, port))) => ForwardTarget::Address { ip, port },
        _ => ForwardTarget::Other {
            raw: raw.to_string(),
        },
    }
}

/// `cache [TTL] [ZONES...] { ... }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cache {
    /// Maximum TTL in seconds; CoreDNS's default (3600) when not written, `None` when it is
    /// an environment placeholder (`{$CACHE_TTL}`) whose value is not in the file.
    pub ttl_secs: Option<u32>,
    pub zones: Vec<String>,
    pub options: Vec<Directive>,
}

/// CoreDNS cache's default maximum TTL.
pub const DEFAULT_CACHE_TTL_SECS: u32 = 3600;

impl Cache {
    fn from_directive(d: &Directive) -> Cache {
        let mut args = d.args.iter().peekable();
        let ttl_secs = match args.peek() {
            Some(a) if a.starts_with("{$") => {
                args.next();
                None
            }
            Some(a) => match a.parse::<u32>() {
                Ok(t) => {
                    args.next();
                    Some(t)
                }
                Err(_) => Some(DEFAULT_CACHE_TTL_SECS),
            },
            None => Some(DEFAULT_CACHE_TTL_SECS),
        };
        Cache {
            ttl_secs,
            zones: args.map(|z| normalise_zone(z)).collect(),
            options: d.block.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_quotes_comments_and_nesting() {
        let cf = parse_corefile(
            "# top\ncluster.local:53 in-addr.arpa,tls://.:853 {\n  errors # inline\n  rewrite name \"a b\" c\n  forward . 10.0.0.1:5353 tls://9.9.9.9 /etc/resolv.conf {$UP} {\n    max_concurrent 1000\n  }\n  cache\n}\n(snip) {\n  log\n}\n",
        )
        .unwrap();
        assert_eq!(cf.snippets, vec!["snip"]);
        let b = &cf.server_blocks[0];
        let zones: Vec<(&str, Option<u16>)> =
            b.keys.iter().map(|k| (k.zone.as_str(), k.port)).collect();
        assert_eq!(
            zones,
            vec![
                ("cluster.local.", Some(53)),
                ("in-addr.arpa.", Some(53)),
                (".", Some(853))
            ]
        );
        assert_eq!(b.plugin("rewrite").unwrap().args, vec!["name", "a b", "c"]);
        let f = b.forward().unwrap();
        assert_eq!(f.to.len(), 4);
        assert_eq!(
            f.to[0],
            ForwardTarget::Address {
                ip: "10.0.0.1".parse().unwrap(),
                port: 5353
            }
        );
        assert_eq!(
            f.to[1],
            ForwardTarget::Tls {
                ip: "9.9.9.9".parse().unwrap(),
                port: 853
            }
        );
        assert_eq!(
            f.to[2],
            ForwardTarget::ResolvConf {
                path: "/etc/resolv.conf".into()
            }
        );
        assert_eq!(
            f.to[3],
            ForwardTarget::Other {
                raw: "{$UP}".into()
            }
        );
        assert_eq!(f.options[0].name, "max_concurrent");
        assert_eq!(b.cache().unwrap().ttl_secs, Some(DEFAULT_CACHE_TTL_SECS));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse_corefile(".:53 {\n log\n"),
            Err(CorefileError::Unclosed { line: 1 })
        );
        assert_eq!(
            parse_corefile("}\n"),
            Err(CorefileError::UnexpectedClose { line: 1 })
        );
        assert!(matches!(
            parse_corefile(".:53\nlog\n"),
            Err(CorefileError::MissingBlock { line: 1, .. })
        ));
        assert!(matches!(
            parse_corefile(".:x {\n}\n"),
            Err(CorefileError::BadKey { .. })
        ));
        assert!(matches!(
            parse_corefile(".:53 {\n rewrite \"a\n}\n"),
            Err(CorefileError::UnterminatedQuote { line: 2 })
        ));
        assert_eq!(parse_corefile("").unwrap(), Corefile::default());
    }
}
