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

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
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
pub fn group(child: &impl Process) -> Pid {
    child.pid()
}

/// A child to wait for: one from `std::process`, or a [`Spawned`].
pub trait Process {
    /// Its pid, which is also its process group's.
    fn pid(&self) -> Pid;
    /// Its exit status if it has exited (reaping it), without blocking.
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>>;
    /// Block until it exits (after a SIGKILL to its group).
    fn wait(&mut self) -> io::Result<ExitStatus>;
}

impl Process for Child {
    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.id()).unwrap_or(i32::MAX))
    }
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        Child::try_wait(self)
    }
    fn wait(&mut self) -> io::Result<ExitStatus> {
        Child::wait(self)
    }
}

/// What a [`spawn`]ed child's standard output is.
pub enum Stdout<'a> {
    /// `/dev/null`.
    Null,
    /// A copy of this descriptor (e.g. our stderr, the log).
    Fd(BorrowedFd<'a>),
}

/// A child started by [`spawn`]. Waiting with `waitid` also tells the
/// real user id the child had when it exited ([`Spawned::exit_uid`]).
pub struct Spawned {
    pid: Pid,
    exit: Option<(ExitStatus, u32)>,
}

impl Spawned {
    /// The real uid the child had when it exited, once it was waited for.
    pub fn exit_uid(&self) -> Option<u32> {
        self.exit.map(|(_, uid)| uid)
    }

    #[allow(unsafe_code)]
    fn waitid(&mut self, block: bool) -> io::Result<Option<ExitStatus>> {
        use nix::libc;
        if let Some((st, _)) = self.exit {
            return Ok(Some(st));
        }
        let id = libc::id_t::try_from(self.pid.as_raw()).unwrap_or(libc::id_t::MAX);
        let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
        loop {
            // SAFETY: siginfo_t is plain data, for which all-zero is a
            // valid value (and si_pid 0 is how WNOHANG says "not yet").
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waitid writes at most one siginfo_t into `info`,
            // which we own; it touches no other memory.
            if unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) } < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // SAFETY: waitid filled the SIGCHLD fields of the union (or
            // left them zero, with WNOHANG and no exit yet).
            let (pid, status, uid) = unsafe { (info.si_pid(), info.si_status(), info.si_uid()) };
            if pid == 0 {
                return Ok(None);
            }
            let raw = match info.si_code {
                libc::CLD_EXITED => (status & 0xff) << 8,
                libc::CLD_DUMPED => (status & 0x7f) | 0x80,
                _ => status & 0x7f,
            };
            let st = ExitStatus::from_raw(raw);
            self.exit = Some((st, uid));
            return Ok(Some(st));
        }
    }
}

impl Process for Spawned {
    fn pid(&self) -> Pid {
        self.pid
    }
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.waitid(false)
    }
    fn wait(&mut self) -> io::Result<ExitStatus> {
        // A blocking waitid returns only with an exit; never a made-up one.
        self.waitid(true)?
            .ok_or_else(|| io::Error::other("waitid returned no exit"))
    }
}

/// Start `program` (looked up on `PATH` unless it has a `/`) with
/// `argv` (its own name first), our environment with `env` set on top,
/// stdin `/dev/null`, stdout as `stdout` says, stderr ours, and each
/// `(fd, n)` of `fds` as its descriptor `n`; in a process group of its
/// own, with no signal blocked and SIGPIPE back at its default.
///
/// `posix_spawn` rather than `std::process::Command`: placing descriptors
/// 3 and 4 needs Command's `pre_exec`, which makes it `fork` this whole
/// process (page tables and copy-on-write faults of a few MiB), where
/// glibc's `posix_spawn` starts the child in our memory, as vfork does.
pub fn spawn(
    program: &OsStr,
    argv: &[&OsStr],
    env: &[(&OsStr, &OsStr)],
    stdout: Stdout<'_>,
    fds: &[(BorrowedFd<'_>, RawFd)],
) -> io::Result<Spawned> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument"))
    };
    let path = cstr(program.as_bytes())?;
    let args = argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut envp = Vec::new();
    for (k, v) in std::env::vars_os() {
        if !env.iter().any(|(name, _)| *name == k) {
            envp.push(cstr(&[k.into_vec(), b"=".to_vec(), v.into_vec()].concat())?);
        }
    }
    for (k, v) in env {
        envp.push(cstr(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
    }

    // Copies above every target number, so that no dup2 below
    // overwrites a source still to be copied. Closed in the parent when
    // this returns; close-on-exec in the child.
    let mut high = Vec::with_capacity(fds.len());
    for (fd, _) in fds {
        high.push(dup_high(*fd)?);
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(null.as_raw_fd(), 0)?;
    let out = match stdout {
        Stdout::Null => None,
        Stdout::Fd(fd) => Some(dup_high(fd)?),
    };
    actions.add_dup2(out.as_ref().map_or(null.as_raw_fd(), AsRawFd::as_raw_fd), 1)?;
    for (h, (_, n)) in high.iter().zip(fds) {
        actions.add_dup2(h.as_raw_fd(), *n)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    attr.set_pgroup(Pid::from_raw(0))?;
    attr.set_sigmask(&SigSet::empty())?;
    let mut default = SigSet::empty();
    default.add(Signal::SIGPIPE);
    attr.set_sigdefault(&default)?;
    let pid = posix_spawnp(&path, &actions, &attr, &args, &envp)?;
    drop((high, null, out));
    Ok(Spawned { pid, exit: None })
}

/// A close-on-exec copy of `fd` numbered 10 or more.
#[allow(unsafe_code)]
fn dup_high(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let n = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: fcntl just made descriptor `n`; nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) })
}

/// End `child` and everything it started: SIGKILL to its process group,
/// then reap it. For a child whose deadline passed.
pub fn kill_group(child: &mut impl Process) {
    let _ = killpg(child.pid(), Signal::SIGKILL);
    let _ = child.wait();
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
            crate::io::log::line(&format!(
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
pub fn wait_until(child: &mut impl Process, deadline: Instant) -> io::Result<Option<ExitStatus>> {
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
    child: &mut impl Process,
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
            kill_group(child);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// Descriptors land where asked even when the pipes' own numbers are
    /// each other's targets; stdin is /dev/null; the child starts with no
    /// signal blocked and SIGPIPE at its default (we ignore it); the exit
    /// status and the uid it exited with come back.
    #[test]
    fn spawn_places_fds_and_resets_signals() {
        let (in_read, in_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (out_read, out_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        // Block a signal here and ignore SIGPIPE, as the server does.
        let mut usr1 = SigSet::empty();
        usr1.add(Signal::SIGUSR1);
        usr1.thread_block().unwrap();
        // SAFETY (test): SIG_IGN installs no handler code.
        #[allow(unsafe_code)]
        unsafe {
            nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn)
                .unwrap();
        }
        let script = "read line <&4; \
            ign=$(sed -n 's/^SigIgn:\t//p' /proc/self/status); \
            blk=$(sed -n 's/^SigBlk:\t//p' /proc/self/status); \
            stdin=$(readlink /proc/self/fd/0); \
            echo \"$line $QSMTPD_TEST $ign $blk $stdin\" >&3; exit 7";
        let mut child = spawn(
            OsStr::new("sh"),
            &[OsStr::new("sh"), OsStr::new("-c"), OsStr::new(script)],
            &[(OsStr::new("QSMTPD_TEST"), OsStr::new("set"))],
            Stdout::Null,
            // Crossed on purpose: whichever of the two got the low numbers.
            &[(out_write.as_fd(), 3), (in_read.as_fd(), 4)],
        )
        .unwrap();
        drop((in_read, out_write));
        std::fs::File::from(in_write).write_all(b"hello\n").unwrap();
        let mut report = String::new();
        std::fs::File::from(out_read)
            .read_to_string(&mut report)
            .unwrap();
        let status = wait_until(&mut child, Instant::now() + Duration::from_secs(20))
            .unwrap()
            .expect("the child exits");
        usr1.thread_unblock().unwrap();
        assert_eq!(status.code(), Some(7));
        assert_eq!(child.exit_uid(), Some(nix::unistd::getuid().as_raw()));
        let words: Vec<&str> = report.split_whitespace().collect();
        let [line, env, ign, blk, stdin] = words[..] else {
            panic!("{report:?}");
        };
        assert_eq!((line, env, stdin), ("hello", "set", "/dev/null"));
        let ign = u64::from_str_radix(ign, 16).unwrap();
        assert_eq!(
            ign & (1 << (Signal::SIGPIPE as u32 - 1)),
            0,
            "SIGPIPE default"
        );
        assert_eq!(u64::from_str_radix(blk, 16).unwrap(), 0, "nothing blocked");
    }
}
