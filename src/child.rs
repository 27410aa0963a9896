//! Edge: bounded dealings with child processes (qmail-queue,
//! checkpassword) — waiting for their exit and writing to their pipes, each
//! with a deadline, without polling loops or threads.
//!
//! Waiting uses a signalfd for SIGCHLD: SIGCHLD is blocked in this process
//! (children get a clean signal mask from `std::process`), and the
//! descriptor becomes readable when a child exits, so `poll` can wait for
//! "a child exited" and "the deadline passed" at once.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ExitStatus};
use std::sync::OnceLock;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The process's SIGCHLD descriptor, made on first use.
fn sigchld() -> io::Result<&'static SignalFd> {
    static FD: OnceLock<Result<SignalFd, Errno>> = OnceLock::new();
    FD.get_or_init(|| {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()?;
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

/// Wait until `child` exits or `deadline` passes (`Ok(None)`).
pub fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let sfd = sigchld()?;
    loop {
        // After the signal is blocked, an exit between this check and the
        // poll below leaves SIGCHLD pending, so poll sees it.
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        let Some(timeout) = left(deadline) else {
            return Ok(None);
        };
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        // Drain: several exits may be merged into one signal.
        while let Ok(Some(_)) = sfd.read_signal() {}
    }
}

/// Make our end of a pipe non-blocking, so writes can have a deadline.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Write all of `data` to a non-blocking pipe before `deadline`.
pub fn write_until(fd: BorrowedFd<'_>, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let Some(timeout) = left(deadline) else {
                    return Err(io::ErrorKind::TimedOut.into());
                };
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
