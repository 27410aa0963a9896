//! Edge: bounded dealings with child processes (qmail-queue,
//! checkpassword) — waiting for their exit, for their pipes, each with a
//! deadline, without polling loops or threads.
//!
//! Waiting uses a signalfd: SIGCHLD is blocked in this process (children
//! get a clean signal mask from `std::process`), and the descriptor becomes
//! readable when a child exits, so `poll` can wait for "a child exited",
//! "the pipe is ready" and "the deadline passed" at once.
//!
//! The children run in process groups of their own (so a timeout kills
//! what they started too), which also puts them out of reach of a signal
//! meant for us. So while we wait on a child, SIGTERM, SIGINT and SIGHUP
//! are held back and read from the same descriptor: one that arrives kills
//! the child's group, then this process dies of it as it would have. A
//! hung checkpassword or qmail-queue is not left behind by `kill`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ExitStatus};
use std::sync::OnceLock;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, killpg, raise};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

/// The signals that end this process while it waits on a child.
const ENDING: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

fn ending() -> SigSet {
    let mut set = SigSet::empty();
    for s in ENDING {
        set.add(s);
    }
    set
}

/// The process's signal descriptor, made on first use: SIGCHLD (blocked
/// for good) and the ending signals (blocked only while a [`Held`] lives).
fn signals() -> io::Result<&'static SignalFd> {
    static FD: OnceLock<Result<SignalFd, Errno>> = OnceLock::new();
    FD.get_or_init(|| {
        let mut chld = SigSet::empty();
        chld.add(Signal::SIGCHLD);
        chld.thread_block()?;
        let mut mask = ending();
        mask.add(Signal::SIGCHLD);
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    })
    .as_ref()
    .map_err(|&e| io::Error::from(e))
}

/// Milliseconds left until `deadline`, for `poll`; `None` when it passed.
fn left(deadline: Instant) -> Option<PollTimeout> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let ms = u32::try_from(left.as_millis().max(1)).unwrap_or(u32::MAX);
    Some(PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX))
}

/// The process group a child leads (it was spawned with `process_group(0)`).
pub fn group(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
}

/// Whether `sig` is ignored here (e.g. SIGHUP under nohup). A blocked
/// signal is kept pending even when ignored, so the descriptor still
/// reports it; it must then be dropped, not acted on.
fn ignored(sig: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig as u32 - 1)) != 0)
}

/// Read what the descriptor holds. An ending signal kills `group` and then
/// this process, with that signal.
fn take_signals(sfd: &SignalFd, group: Pid) {
    while let Ok(Some(info)) = sfd.read_signal() {
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if ENDING.contains(&sig) && !ignored(sig) {
            let _ = killpg(group, Signal::SIGKILL);
            crate::log::line(&format!(
                "{sig} while waiting on child {group}: killed its process group"
            ));
            let _ = ending().thread_unblock();
            let _ = raise(sig);
            // Not reached unless the signal is caught or ignored.
            std::process::exit(128 + sig as i32);
        }
    }
}

/// While one lives, the ending signals are held back (blocked) and read
/// from the signal descriptor by [`poll_until`] instead of killing this
/// process outright. Dropping it acts on any that came, then lets them
/// through again.
struct Held {
    group: Pid,
}

impl Held {
    fn new(group: Pid) -> io::Result<Held> {
        signals()?;
        ending().thread_block()?;
        Ok(Held { group })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(sfd) = signals() {
            take_signals(sfd, self.group);
        }
        let _ = ending().thread_unblock();
    }
}

/// What ended a [`poll_until`].
#[derive(PartialEq)]
enum Woke {
    /// The deadline passed.
    Deadline,
    /// The descriptor is ready (or at its end, or in error).
    Ready,
    /// Something else: a child exited, a signal, a timeout capped by poll.
    Other,
}

/// Wait until `fd` is ready for `events` (if given), a child exits, or
/// `deadline` passes. Called with the ending signals [`Held`]: one that
/// arrives kills `group`, then this process.
fn poll_until(
    fd: Option<(BorrowedFd<'_>, PollFlags)>,
    group: Pid,
    deadline: Instant,
) -> io::Result<Woke> {
    let sfd = signals()?;
    let Some(timeout) = left(deadline) else {
        return Ok(Woke::Deadline);
    };
    let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
    if let Some((fd, events)) = fd {
        fds.push(PollFd::new(fd, events));
    }
    let r = poll(&mut fds, timeout);
    let ready = fds
        .get(1)
        .and_then(PollFd::revents)
        .is_some_and(|e| !e.is_empty());
    // Drain (several exits may be merged into one SIGCHLD) and act on an
    // ending signal.
    take_signals(sfd, group);
    match r {
        Ok(_) if ready => Ok(Woke::Ready),
        Ok(_) | Err(Errno::EINTR) => Ok(Woke::Other),
        Err(e) => Err(e.into()),
    }
}

/// Wait until `child` exits or `deadline` passes (`Ok(None)`).
pub fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    // `Held::new` makes the descriptor, so SIGCHLD is blocked before the
    // first check: an exit between a check and the poll stays pending for
    // the poll to see.
    let group = group(child);
    let _held = Held::new(group)?;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if poll_until(None, group, deadline)? == Woke::Deadline {
            return Ok(None);
        }
    }
}

/// Wait until `fd` is readable (or at its end), or `deadline` passes
/// (`Ok(false)`); `group` is the child at the other end.
pub fn readable_until(fd: BorrowedFd<'_>, group: Pid, deadline: Instant) -> io::Result<bool> {
    let _held = Held::new(group)?;
    loop {
        match poll_until(Some((fd, PollFlags::POLLIN)), group, deadline)? {
            Woke::Ready => return Ok(true),
            Woke::Deadline => return Ok(false),
            Woke::Other => {}
        }
    }
}

/// Read a child's report pipe `r` to its end, keeping at most `cap`
/// bytes, then wait for the child; all before `deadline`. `Ok(None)`: the
/// deadline passed first, and the child's process group was killed and
/// the child reaped.
pub fn report_and_exit(
    child: &mut Child,
    r: &mut std::fs::File,
    cap: usize,
    deadline: Instant,
) -> io::Result<Option<(Vec<u8>, ExitStatus)>> {
    use std::io::Read;
    let group = group(child);
    let mut report = Vec::new();
    let mut timed_out = false;
    loop {
        if !readable_until(r.as_fd(), group, deadline)? {
            timed_out = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(report.len());
                report.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let status = if timed_out {
        None
    } else {
        wait_until(child, deadline)?
    };
    match status {
        Some(st) => Ok(Some((report, st))),
        None => {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            Ok(None)
        }
    }
}

/// Make our end of a pipe non-blocking, so writes can have a deadline.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Write all of `data` to a non-blocking pipe before `deadline`; `group`
/// is the child reading it.
pub fn write_until(
    fd: BorrowedFd<'_>,
    mut data: &[u8],
    group: Pid,
    deadline: Instant,
) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let _held = Held::new(group)?;
                if poll_until(Some((fd, PollFlags::POLLOUT)), group, deadline)? == Woke::Deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
