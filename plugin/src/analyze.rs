//! Offline analysis: `kubectl dns-doctor analyze FILE...`.
//!
//! Each file is diagnosed by the same rules as a live run, on a capture-only context (see
//! [`diagnose::DiagnosisInput`]): the file is taken to be a capture in the client's pod, so
//! its findings carry the ids a live run reports.
//!
//! Every file is opened and its header checked before anything is written, so a bad file
//! name fails the whole command cleanly. Transactions are streamed to the output as they
//! complete; memory stays bounded by the open transactions, whatever the capture's length.

use crate::capture::transaction_json::TransactionWriter;
use crate::capture::{
    analyze_reader, CaptureAnalysis, CaptureError, CaptureFormat, CaptureReader, ExtractOptions,
    TrackerConfig, Transaction,
};
use crate::diagnose::{self, DiagnosisInput, Finding, PointAnalysis, Severity};
use crate::evidence::{CaptureKind, Evidence};
use crate::topology::Topology;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the JSON document (docs/analyze-schema.md); raised on any incompatible change.
/// 2: findings have the live report's shape (evidence `{source, detail}`, remediation a list).
pub const SCHEMA_VERSION: u32 = 2;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable summary, findings and latency percentiles.
    Text,
    /// One JSON document (docs/analyze-schema.md): `{schema_version, files: [{file,
    /// transactions, summary, capture, findings}], verdict}`, findings in the live report's
    /// form.
    Json,
}

/// Overall result; maps to exit codes 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No finding of severity warning or error.
    Healthy,
    /// At least one warning or error.
    ProblemsFound,
}

/// Why `analyze` could not run (exit code 2). Each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// No file given.
    #[error("no capture file given")]
    NoFiles,
    /// The file cannot be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a readable capture.
    #[error("cannot read {} as a capture", path.display())]
    Capture {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CaptureError,
    },
    /// Writing the report failed (for example a closed pipe).
    #[error("writing the analysis failed")]
    Output(#[source] std::io::Error),
}

fn open(path: &Path) -> Result<CaptureReader<'static>, AnalyzeError> {
    let file = File::open(path).map_err(|source| AnalyzeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // Unbuffered: the capture reader keeps a buffer of its own, and a second one in front
    // of it only copied every byte once more.
    CaptureReader::new(file).map_err(|source| AnalyzeError::Capture {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Serialize)]
struct FileTail<'a> {
    summary: &'a crate::capture::Summary,
    capture: CaptureInfo<'a>,
    findings: &'a [Finding],
}

#[derive(Serialize)]
struct CaptureInfo<'a> {
    format: &'static str,
    frames: u64,
    non_dns_frames: u64,
    malformed_dns: u64,
    tcp_desyncs: u64,
    read_error: Option<&'a str>,
}

fn format_name(f: CaptureFormat) -> &'static str {
    match f {
        CaptureFormat::Pcap => "pcap",
        CaptureFormat::PcapNg => "pcapng",
    }
}

/// Analyses each capture and writes the report to `out`.
///
/// Returns [`Verdict::ProblemsFound`] when any file has a finding of severity warning or
/// error. Fails before writing anything if a file cannot be opened or is not a pcap/pcapng
/// capture; a capture damaged part-way is analysed up to the damage and says so.
pub fn run(
    files: &[PathBuf],
    format: Format,
    out: &mut dyn Write,
) -> Result<Verdict, AnalyzeError> {
    if files.is_empty() {
        return Err(AnalyzeError::NoFiles);
    }
    let readers = files
        .iter()
        .map(|p| open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, out);
    let mut verdict = Verdict::Healthy;
    let result = match format {
        Format::Json => write_json(files, readers, &mut w, &mut verdict),
        Format::Text => write_text(files, readers, &mut w, &mut verdict),
    };
    result
        .and_then(|()| w.flush())
        .map_err(AnalyzeError::Output)?;
    Ok(verdict)
}

fn judge(f: &[Finding], verdict: &mut Verdict) {
    if f.iter().any(|f| f.severity >= Severity::Warning) {
        *verdict = Verdict::ProblemsFound;
    }
}

/// The findings of one capture file, diagnosed by the live run's rules as the capture of
/// the client's pod, with nothing known about the cluster; root cause first. Evidence
/// names the point `capture:<file name>`.
pub fn findings(path: &Path, analysis: &CaptureAnalysis) -> Vec<Finding> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let points = [PointAnalysis {
        name: &name,
        kind: CaptureKind::Pod,
        analysis,
    }];
    let topology = Topology::default();
    let evidence = Evidence::default();
    // The checklist and lookups describe a live run; only the findings apply here.
    diagnose::diagnose(&DiagnosisInput {
        topology: &topology,
        evidence: &evidence,
        captures: &points,
        correlation: None,
    })
    .findings
}

fn write_json(
    files: &[PathBuf],
    readers: Vec<CaptureReader<'static>>,
    w: &mut dyn Write,
    verdict: &mut Verdict,
) -> std::io::Result<()> {
    write!(w, "{{\"schema_version\":{SCHEMA_VERSION},\"files\":[")?;
    for (i, (path, reader)) in files.iter().zip(readers).enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write!(w, "{{\"file\":")?;
        serde_json::to_writer(&mut *w, &path.display().to_string())?;
        w.write_all(b",\"transactions\":[")?;
        let mut first = true;
        let mut failed: Option<std::io::Error> = None;
        // Each transaction is written into one reused buffer and handed over at once: much
        // cheaper than many small writes through `dyn Write`.
        let mut buf = Vec::with_capacity(1024);
        let mut writer = TransactionWriter::default();
        let mut sink = |t: Transaction| {
            if failed.is_some() {
                return;
            }
            buf.clear();
            if !first {
                buf.push(b',');
            }
            first = false;
            let r = writer.write(&mut buf, &t).and_then(|()| w.write_all(&buf));
            if let Err(e) = r {
                failed = Some(e);
            }
        };
        let analysis = analyze_reader(
            reader,
            ExtractOptions::default(),
            TrackerConfig::default(),
            &mut sink,
        );
        if let Some(e) = failed {
            return Err(e);
        }
        let found = findings(path, &analysis);
        judge(&found, verdict);
        w.write_all(b"],")?;
        let tail = serde_json::to_string(&tail(&analysis, &found))?;
        // Splice the tail object's fields into the file object opened above.
        w.write_all(&tail.as_bytes()[1..])?;
    }
    write!(w, "],\"verdict\":")?;
    serde_json::to_writer(&mut *w, verdict)?;
    w.write_all(b"}\n")
}

fn tail<'a>(a: &'a CaptureAnalysis, found: &'a [Finding]) -> FileTail<'a> {
    FileTail {
        summary: &a.analysis.summary,
        capture: CaptureInfo {
            format: format_name(a.format),
            frames: a.stats.frames,
            non_dns_frames: a.stats.non_dns_frames,
            malformed_dns: a.stats.malformed_dns,
            tcp_desyncs: a.stats.tcp_desyncs,
            read_error: a.read_error.as_deref(),
        },
        findings: found,
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

fn write_text(
    files: &[PathBuf],
    readers: Vec<CaptureReader<'static>>,
    w: &mut dyn Write,
    verdict: &mut Verdict,
) -> std::io::Result<()> {
    for (path, reader) in files.iter().zip(readers) {
        let a = analyze_reader(
            reader,
            ExtractOptions::default(),
            TrackerConfig::default(),
            &mut |_| {},
        );
        let found = findings(path, &a);
        judge(&found, verdict);
        let s = &a.analysis.summary;
        writeln!(
            w,
            "{} ({}, {} frames)",
            path.display(),
            format_name(a.format),
            a.stats.frames
        )?;
        writeln!(
            w,
            "  DNS messages: {} ({} queries, {} responses; {} UDP, {} TCP)",
            s.dns_messages, s.queries, s.responses, s.udp_messages, s.tcp_messages
        )?;
        writeln!(
            w,
            "  Transactions: {} ({} answered, {} unanswered, {} in flight at end; {} retransmissions, {} unmatched responses)",
            s.transactions,
            s.answered,
            s.unanswered_transactions,
            s.in_flight_at_end,
            s.retransmissions,
            s.unmatched_responses
        )?;
        if !s.rcodes.is_empty() {
            let codes: Vec<String> = s.rcodes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(w, "  Response codes: {}", codes.join(", "))?;
        }
        let l = &s.latency;
        writeln!(
            w,
            "  Latency ms: p50 {}  p90 {}  p99 {}  max {}",
            opt_ms(l.p50_ms),
            opt_ms(l.p90_ms),
            opt_ms(l.p99_ms),
            opt_ms(l.max_ms)
        )?;
        if let Some(e) = &a.read_error {
            writeln!(w, "  Read stopped early: {e}")?;
        }
        if found.is_empty() {
            writeln!(w, "  Findings: none")?;
        } else {
            writeln!(w, "  Findings:")?;
        }
        for f in &found {
            writeln!(w, "  - [{}] {}: {}", f.severity.label(), f.id, f.summary)?;
            for e in &f.evidence {
                writeln!(w, "      {}: {}", e.source, e.detail)?;
            }
            writeln!(w, "      What to do:")?;
            for (i, r) in f.remediation.iter().enumerate() {
                writeln!(w, "        {}. {r}", i + 1)?;
            }
        }
        writeln!(w)?;
    }
    let v = match verdict {
        Verdict::Healthy => "healthy: no DNS problem found in the captures",
        Verdict::ProblemsFound => "problems found",
    };
    writeln!(w, "Verdict: {v}")
}
