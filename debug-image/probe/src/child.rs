//! Child processes that cannot outlive the probe, and the signals the probe sends and waits
//! for. The only unsafe code of the probe lives here, each block with its reason.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How often a bounded wait looks at the child again.
const POLL: Duration = Duration::from_millis(20);

/// PID of the external command currently running, 0 when none. The watchdog kills it before
/// the process exits at its deadline.
static CURRENT: AtomicU32 = AtomicU32::new(0);

/// Spawns `command` so that the kernel kills it with SIGKILL when the probe dies, whatever
/// the reason (SIGKILL of the probe included), with a clean signal mask.
///
/// The parent-death signal fires when the *thread* that forked exits, so call this only
/// from a thread that lives as long as the child should (the main thread).
#[allow(unsafe_code)]
pub fn spawn_tied(command: &mut Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, sigemptyset, pthread_sigmask); it
    // allocates nothing and touches no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The probe may have died between fork and prctl; then nobody would kill us.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::other("parent exited before exec"));
            }
            // The capture mode blocks SIGTERM/SIGINT in the probe to receive them with
            // sigwait; the child must get them normally.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    CURRENT.store(child.id(), Ordering::SeqCst);
    Ok(child)
}

/// Forgets the current child once it has been reaped.
pub fn clear_current() {
    CURRENT.store(0, Ordering::SeqCst);
}

/// Kills the current child, if any. Called by the watchdog just before the probe exits.
pub fn kill_current() {
    let pid = CURRENT.swap(0, Ordering::SeqCst);
    if pid != 0 {
        send_signal(pid, libc::SIGKILL);
    }
}

/// Sends `signal` to process `pid`; a process that is already gone is not an error.
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; pid is a child we spawned.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Waits for `child` to exit, at most `limit`; None when it is still running.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread and every thread it creates later, so
/// that [`wait_termination_signal`] receives them. Call before spawning any thread.
#[allow(unsafe_code)]
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised signal set; pthread_sigmask only reads it.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits for SIGTERM or SIGINT (blocked beforehand by [`block_termination_signals`]) and
/// returns its number.
#[allow(unsafe_code)]
pub fn wait_termination_signal() -> io::Result<libc::c_int> {
    let set = termination_set();
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is an initialised signal set and `signal` a valid out pointer.
    let rc = unsafe { libc::sigwait(&set, &mut signal) };
    if rc == 0 {
        Ok(signal)
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

#[allow(unsafe_code)]
fn termination_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset initialises it and the adds
    // cannot fail for valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// What a finished (or killed) command left behind.
#[derive(Debug)]
pub struct Finished {
    /// None when the command was killed at its timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// What stdout wrote past the cap of [`run_bounded_capped`]: read, counted, not kept.
    pub stdout_dropped: Dropped,
}

/// Output read and not kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub bytes: u64,
    /// Lines begun in the dropped bytes (a last line without a newline counts).
    pub lines: u64,
}

/// Runs `argv` to completion with a time limit, capturing its output (lossy UTF-8). Spawns
/// from the calling thread; see [`spawn_tied`].
pub fn run_bounded(argv: &[String], limit: Duration) -> io::Result<Finished> {
    run_bounded_capped(argv, limit, usize::MAX)
}

/// [`run_bounded`] keeping at most `max_stdout` bytes of stdout, cut after the last whole
/// line that fits. The rest is still read to the end (so the command is not stopped by a
/// full pipe and can finish, e.g. print its own summary on stderr) and counted in
/// [`Finished::stdout_dropped`].
pub fn run_bounded_capped(
    argv: &[String],
    limit: Duration,
    max_stdout: usize,
) -> io::Result<Finished> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let start = Instant::now();
    let mut child = spawn_tied(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    let stdout = drain_capped(child.stdout.take(), max_stdout);
    let stderr = drain(child.stderr.take());
    let waited = wait_bounded(&mut child, limit);
    if !matches!(waited, Ok(Some(_))) {
        // Timed out (or try_wait failed): kill so the pipes close and the readers end.
        let _ = child.kill();
        let _ = child.wait();
    }
    clear_current();
    let status = waited?;
    let (stdout, stdout_dropped) = stdout.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
        stdout_dropped,
    })
}

fn drain_capped<R: Read + Send + 'static>(
    pipe: Option<R>,
    cap: usize,
) -> thread::JoinHandle<(String, Dropped)> {
    thread::spawn(move || {
        let mut kept = Keep::new(cap);
        if let Some(mut pipe) = pipe {
            let mut chunk = [0u8; 64 * 1024];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => kept.push(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        kept.finish()
    })
}

/// The first whole lines of a stream that fit in `cap` bytes, and a count of the rest.
struct Keep {
    cap: usize,
    bytes: Vec<u8>,
    full: bool,
    dropped: Dropped,
    /// The last dropped byte, to count a last line without a newline.
    last_dropped: Option<u8>,
}

impl Keep {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            bytes: Vec::new(),
            full: false,
            dropped: Dropped::default(),
            last_dropped: None,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if self.full {
            self.drop_bytes(data);
            return;
        }
        self.bytes.extend_from_slice(data);
        if self.bytes.len() <= self.cap {
            return;
        }
        self.full = true;
        let keep = self.bytes[..self.cap]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let rest = self.bytes.split_off(keep);
        self.drop_bytes(&rest);
    }

    fn drop_bytes(&mut self, data: &[u8]) {
        let Some(&last) = data.last() else { return };
        self.dropped.bytes += data.len() as u64;
        self.dropped.lines += data.iter().filter(|b| **b == b'\n').count() as u64;
        self.last_dropped = Some(last);
    }

    fn finish(mut self) -> (String, Dropped) {
        if self.last_dropped.is_some_and(|b| b != b'\n') {
            self.dropped.lines += 1;
        }
        (
            String::from_utf8_lossy(&self.bytes).into_owned(),
            self.dropped,
        )
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn captures_output_and_exit_code() {
        let done = run_bounded(
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(done.status.and_then(|s| s.code()), Some(3));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
    }

    #[test]
    fn a_capped_stdout_keeps_whole_lines_and_counts_the_rest() {
        // "1\n" to "36\n" are 9 * 2 + 27 * 3 = 99 bytes: "37\n" no longer fits in 100.
        let done = run_bounded_capped(
            &argv(&["sh", "-c", "seq 1 1000; echo done >&2"]),
            Duration::from_secs(5),
            100,
        )
        .unwrap();
        assert_eq!(done.status.and_then(|s| s.code()), Some(0));
        let kept: Vec<&str> = done.stdout.lines().collect();
        assert_eq!(kept.first(), Some(&"1"));
        assert_eq!(kept.last(), Some(&"36"));
        assert!(done.stdout.len() <= 100 && done.stdout.ends_with('\n'));
        assert_eq!(done.stdout_dropped.lines, 1000 - 36);
        assert_eq!(
            done.stdout_dropped.bytes as usize + done.stdout.len(),
            (1..=1000)
                .map(|n: u32| n.to_string().len() + 1)
                .sum::<usize>()
        );
        // The command ran to its end: its last words on stderr are there.
        assert_eq!(done.stderr, "done\n");
        let whole = run_bounded(
            &argv(&["sh", "-c", "printf 'a\\nb'"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            (whole.stdout.as_str(), whole.stdout_dropped),
            ("a\nb", Dropped::default())
        );
        let unterminated = run_bounded_capped(
            &argv(&["sh", "-c", "printf 'a\\nbcd'"]),
            Duration::from_secs(5),
            3,
        )
        .unwrap();
        assert_eq!(unterminated.stdout, "a\n");
        assert_eq!(unterminated.stdout_dropped, Dropped { bytes: 3, lines: 1 });
    }

    #[test]
    fn kills_a_command_at_its_limit() {
        let done = run_bounded(&argv(&["sleep", "30"]), Duration::from_millis(200)).unwrap();
        assert!(done.status.is_none());
        assert!(done.elapsed < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_an_error() {
        assert!(run_bounded(
            &argv(&["dns-doctor-no-such-program"]),
            Duration::from_secs(1)
        )
        .is_err());
    }
}
