//! The one place that writes to stdout and stderr.
//!
//! stdout carries the report and nothing else; messages and progress go to stderr. A
//! closed stdout (`| head`) is not an error: the report is simply cut short.

use std::io::{self, Write};

/// Write the report to stdout. A broken pipe is swallowed.
#[allow(clippy::print_stdout)]
pub fn write_report(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
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
#[allow(clippy::print_stderr)]
pub fn write_stderr(s: &str) {
    let _ = io::stderr().lock().write_all(s.as_bytes());
}

/// A streaming writer to stdout for large reports. After the reader goes away (broken
/// pipe) further output is dropped silently.
#[derive(Default)]
pub struct ReportWriter {
    closed: bool,
}

impl Write for ReportWriter {
    #[allow(clippy::print_stdout)]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match io::stdout().lock().write_all(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match io::stdout().lock().flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// Colour on stdout only for a terminal, and never when NO_COLOR is set.
pub fn color_enabled() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal()
}
