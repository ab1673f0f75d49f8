//! The text report: verdict first, then findings with evidence and remediation, then the
//! runbook checklist, then packet ladders for lost queries, then what the run left behind.

use std::io::{self, Write};

use crate::diagnose::{CheckStatus, Severity};

use super::{Report, Verdict};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";

struct Paint {
    color: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    }

    fn severity(&self, s: Severity) -> String {
        let code = match s {
            Severity::Error => RED,
            Severity::Warning => YELLOW,
            Severity::Info => DIM,
        };
        self.wrap(code, &format!("{:<7}", s.label()))
    }

    fn status(&self, s: CheckStatus) -> String {
        let code = match s {
            CheckStatus::Pass => GREEN,
            CheckStatus::Warn => YELLOW,
            CheckStatus::Fail => RED,
            CheckStatus::Skipped => DIM,
        };
        self.wrap(code, &format!("[{}]", s.label()))
    }
}

/// Writes the human-readable report. `color` adds ANSI colours (the caller decides from
/// the terminal and NO_COLOR).
pub fn render_text(report: &Report, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let p = Paint { color };
    let verdict_code = match report.verdict {
        Verdict::Healthy => GREEN,
        Verdict::ProblemsFound => RED,
        Verdict::Incomplete => YELLOW,
    };
    let t = &report.target;
    writeln!(
        out,
        "{} DNS for pod {}/{}: {}",
        p.wrap(BOLD, "dns-doctor"),
        t.namespace,
        t.name,
        p.wrap(&format!("{BOLD}{verdict_code}"), report.verdict.label())
    )?;
    writeln!(out, "  {}", report.headline)?;
    let mut about = Vec::new();
    if let Some(n) = &t.node {
        about.push(format!("node {n}"));
    }
    if let Some(w) = &t.chosen_from {
        about.push(format!("chosen from {w}"));
    }
    if let Some(c) = &t.container {
        about.push(format!("container {c}"));
    }
    about.push(format!("dnsPolicy {}", t.dns_policy));
    if let Some(l) = &t.libc {
        about.push(format!("libc {l}"));
    }
    writeln!(out, "  pod: {}", about.join(", "))?;
    let dns = &report.cluster_dns;
    let ips: Vec<String> = dns.ips.iter().map(|i| i.to_string()).collect();
    let eps: Vec<String> = dns.ready_endpoints.iter().map(|i| i.to_string()).collect();
    writeln!(
        out,
        "  cluster DNS: {} ({}), Service {}, ready endpoints [{}]",
        if ips.is_empty() {
            "unknown".to_string()
        } else {
            ips.join(", ")
        },
        dns.source,
        dns.service.as_deref().unwrap_or("none"),
        eps.join(", ")
    )?;
    if let Some(plane) = &report.data_plane {
        writeln!(out, "  data plane: {}", plane.detail)?;
    }
    if !report.strategy.is_empty() {
        writeln!(
            out,
            "  strategy: {} ({})",
            report.strategy, report.strategy_reason
        )?;
    }

    writeln!(out)?;
    writeln!(out, "{}", p.wrap(BOLD, "FINDINGS"))?;
    if report.findings.is_empty() {
        writeln!(out, "  none")?;
    }
    for (i, f) in report.findings.iter().enumerate() {
        writeln!(
            out,
            "  {}. {} {}  [{}]",
            i + 1,
            p.severity(f.severity),
            f.summary,
            f.id
        )?;
        if !f.evidence.is_empty() {
            writeln!(out, "     evidence:")?;
            for e in &f.evidence {
                writeln!(out, "       - {}: {}", e.source, e.detail)?;
            }
        }
        if let Some(lp) = &f.loss_point {
            writeln!(out, "     lost after: {lp}")?;
        }
        if !f.remediation.is_empty() {
            writeln!(out, "     what to do:")?;
            for (j, r) in f.remediation.iter().enumerate() {
                // Continuation lines (a YAML snippet) keep the item's indentation.
                let r = r.replace('\n', "\n          ");
                writeln!(out, "       {}. {r}", j + 1)?;
            }
        }
    }

    writeln!(out)?;
    writeln!(out, "{}", p.wrap(BOLD, "RUNBOOK CHECKLIST"))?;
    let title_width = report
        .checklist
        .iter()
        .map(|c| c.title.chars().count())
        .max()
        .unwrap_or(0);
    for (i, c) in report.checklist.iter().enumerate() {
        writeln!(
            out,
            "  {} {:>2}. {:<w$}  {}",
            p.status(c.status),
            i + 1,
            c.title,
            c.detail,
            w = title_width
        )?;
    }

    if !report.lost_queries.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.wrap(BOLD, "LOST QUERIES (packet ladder)"))?;
        for (i, l) in report.lost_queries.iter().enumerate() {
            writeln!(
                out,
                "  #{} {} {} (id {:#06x}), last seen at {}",
                i + 1,
                l.qtype,
                l.qname,
                l.dns_id,
                l.last_point
            )?;
            for line in super::ladder::render(l) {
                writeln!(out, "    {line}")?;
            }
        }
    }

    if !report.capture_points.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.wrap(BOLD, "CAPTURES"))?;
        for c in &report.capture_points {
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match &c.error {
                Some(e) => writeln!(out, "  {} ({kind}): failed: {e}", c.name)?,
                None => writeln!(
                    out,
                    "  {} ({kind}): {} bytes{}",
                    c.name,
                    c.bytes,
                    c.file
                        .as_deref()
                        .map(|f| format!(", {f}"))
                        .unwrap_or_default()
                )?,
            }
        }
    }

    if !report.ephemeral_containers.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.wrap(BOLD, "LEFT IN POD SPECS"))?;
        writeln!(
            out,
            "  ephemeral containers cannot be removed from a pod; these stay in the spec:"
        )?;
        for e in &report.ephemeral_containers {
            let state = if e.terminated {
                "exited"
            } else {
                "NOT confirmed exited"
            };
            writeln!(out, "  {} in {}: {state}", e.container, e.pod)?;
        }
    }

    if !report.step_errors.is_empty() || !report.discovery_gaps.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.wrap(BOLD, "NOT DONE"))?;
        for e in &report.step_errors {
            writeln!(out, "  {}: {}", e.step, e.error)?;
        }
        for g in &report.discovery_gaps {
            writeln!(out, "  discovery: {g}")?;
        }
    }

    writeln!(out)?;
    if let Some(dir) = &report.bundle_dir {
        writeln!(out, "evidence bundle: {dir}")?;
    }
    writeln!(
        out,
        "verdict after {:.1} s, total {:.1} s; dns-doctor {}, report schema {}",
        report.timings.time_to_verdict_ms as f64 / 1000.0,
        report.timings.total_ms as f64 / 1000.0,
        report.tool_version,
        report.schema_version
    )?;
    Ok(())
}
