//! The one place that writes to stdout and stderr.
//!
//! stdout carries the report and nothing else; messages and progress go to stderr.
//!
//! Neither stream closing may stop a run: a doctor run has containers and node pods to
//! clean up after the last log line. Writes to a closed stderr are dropped silently; a
//! report that cannot be written to stdout is an error the caller turns into exit code 2,
//! because a script reading it got nothing it can rely on.

use std::fs::File;
use std::io::{self, Write};

/// Write the report to stdout. Any failure, a closed pipe included, is returned: the
/// report did not reach its reader.
#[allow(clippy::print_stdout)]
pub fn write_report(bytes: &[u8]) -> Result<(), ReportNotWritten> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| ReportNotWritten { source })
}

/// The report could not be written to stdout.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report to stdout")]
pub struct ReportNotWritten {
    #[source]
    pub source: io::Error,
}

/// Print an error chain the way users read it: the error, its causes, then what to do.
pub fn print_error(err: &anyhow::Error) {
    let mut msg = format!("error: {err}\n");
    for cause in err.chain().skip(1) {
        msg.push_str(&format!("  Caused by: {cause}\n"));
    }
    if let Some(hint) = crate::error::hint_for(err) {
        msg.push_str(&format!("  hint: {hint}\n"));
    }
    write_stderr(&msg);
}

/// Write a line to stderr, ignoring failures (there is nowhere left to report them).
pub fn write_stderr(s: &str) {
    let _ = StderrWriter.write_all(s.as_bytes());
}

/// stderr for logs and messages: a write that fails (closed pipe, full disk) is dropped
/// and reported as done, so no logger or message can fail, or panic, because of it.
#[derive(Clone, Copy, Default)]
pub struct StderrWriter;

impl Write for StderrWriter {
    #[allow(clippy::print_stderr)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().lock().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrWriter {
    type Writer = StderrWriter;

    fn make_writer(&'a self) -> Self::Writer {
        StderrWriter
    }
}

/// A streaming writer to stdout for large reports; errors (a closed pipe included) are
/// returned to the writer's user.
///
/// It writes to a duplicate of stdout's file descriptor rather than through `io::stdout()`:
/// that one is line-buffered and searches every write for a newline, which for hundreds of
/// megabytes of JSON that its caller buffers anyway cost a few percent of an `analyze` run.
/// Nothing else may be left in `io::stdout()`'s buffer when this writes (nothing is: the
/// report is all that goes to stdout).
pub struct ReportWriter {
    direct: Option<File>,
}

impl Default for ReportWriter {
    fn default() -> Self {
        Self {
            direct: duplicate_stdout(),
        }
    }
}

/// stdout's descriptor duplicated into a file. When it cannot be duplicated (or on a
/// platform without file descriptors), writes go through io::stdout(), which still works.
#[cfg(unix)]
fn duplicate_stdout() -> Option<File> {
    use std::os::fd::AsFd;
    io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(File::from)
}

#[cfg(not(unix))]
fn duplicate_stdout() -> Option<File> {
    None
}

impl Write for ReportWriter {
    #[allow(clippy::print_stdout)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.direct {
            Some(f) => f.write(buf),
            None => io::stdout().lock().write_all(buf).map(|()| buf.len()),
        }
    }

    #[allow(clippy::print_stdout)]
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.direct {
            Some(f) => f.flush(),
            None => io::stdout().lock().flush(),
        }
    }
}

/// Colour on stdout only for a terminal, and never when NO_COLOR is set.
pub fn color_enabled() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal()
}
