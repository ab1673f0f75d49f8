//! Turning errors into advice: every error a user can meet says what to do next.

use crate::analyze::AnalyzeError;
use crate::cli::UsageError;

/// The next step for the first error in the chain that has one.
pub fn hint_for(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::kube::KubeError>() {
            return e.hint();
        }
        if cause.downcast_ref::<AnalyzeError>().is_some() {
            return Some(
                "pass pcap or pcapng files, e.g. from `tcpdump -i any -w dns.pcap port 53`"
                    .to_string(),
            );
        }
        if cause
            .downcast_ref::<crate::printer::ReportNotWritten>()
            .is_some()
        {
            return Some(
                "the run itself finished and cleaned up; let the reader take the whole report \
                 (redirect it to a file rather than closing the pipe early), or add \
                 `--output-dir DIR` to keep report.json and report.txt"
                    .to_string(),
            );
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return Some("see `kubectl dns-doctor --help`".to_string());
        }
    }
    None
}
