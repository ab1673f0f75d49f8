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
}

/// Runs `argv` to completion with a time limit, capturing its output (lossy UTF-8). Spawns
/// from the calling thread; see [`spawn_tied`].
pub fn run_bounded(argv: &[String], limit: Duration) -> io::Result<Finished> {
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
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let waited = wait_bounded(&mut child, limit);
    if !matches!(waited, Ok(Some(_))) {
        // Timed out (or try_wait failed): kill so the pipes close and the readers end.
        let _ = child.kill();
        let _ = child.wait();
    }
    clear_current();
    let status = waited?;
    Ok(Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    })
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
