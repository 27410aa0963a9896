//! Edge: run qmail-queue (or `QMAILQUEUE`) for one message.
//!
//! The message goes to the child's fd 0 and, once that is closed, the
//! envelope to its fd 1 (qmail-queue(8)). qmail-queue stores nothing unless
//! it reads a complete envelope, so aborting is simply closing both pipes
//! without one. The child gets fresh pipes on fd 0 and fd 1 and inherits
//! fd 2; it never sees the client connection.
//!
//! Every write to the pipes and the wait for the exit share one deadline
//! per step (`timeoutsmtpd`): a qmail-queue that stops reading or never
//! exits is killed and the message refused (`451 qq timeout`), so a stuck
//! queue program cannot hold the connection forever.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::io::child;
use crate::smtp::session::{QueueExit, QueueOutcome};

pub struct Queue {
    child: Child,
    body: Option<ChildStdin>,
    envelope: Option<File>,
    write_failed: bool,
    timed_out: bool,
    timeout: Duration,
}

/// Why qmail-queue could not be started, as the session needs to know it.
pub fn start_failure(e: &io::Error) -> QueueOutcome {
    // qmail forks first and the child exits 120 when exec fails; we learn
    // the same from spawn directly.
    let exec_failed = matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(nix::libc::ENOEXEC);
    QueueOutcome {
        exit: if exec_failed {
            QueueExit::Exited(120)
        } else {
            QueueExit::Unknown
        },
        write_failed: false,
    }
}

impl Queue {
    /// Start `program` with `env` applied to our environment (`None`
    /// removes a variable). Each later step may take at most `timeout`.
    pub fn spawn(
        program: &Path,
        env: &[(String, Option<Vec<u8>>)],
        timeout: Duration,
    ) -> io::Result<Queue> {
        use std::os::unix::ffi::OsStrExt;
        let (env_read, env_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let mut cmd = Command::new(program);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, std::ffi::OsStr::from_bytes(v)),
                None => cmd.env_remove(k),
            };
        }
        // Its own process group, so a timeout kills what it started too
        // (a QMAILQUEUE filter's children).
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_read))
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let body = child.stdin.take();
        if let Some(b) = &body {
            child::set_nonblocking(b.as_fd())?;
        }
        child::set_nonblocking(env_write.as_fd())?;
        Ok(Queue {
            child,
            body,
            envelope: Some(File::from(env_write)),
            write_failed: false,
            timed_out: false,
            timeout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send message bytes. A failure (qmail-queue exited early, or stopped
    /// reading for `timeout`) is remembered and later bytes are dropped;
    /// the client's DATA is still read to its end.
    pub fn write_body(&mut self, data: &[u8]) {
        if let Some(body) = &self.body {
            let deadline = Instant::now() + self.timeout;
            if let Err(e) =
                child::write_until(body.as_fd(), data, child::group(&self.child), deadline)
            {
                self.timed_out |= e.kind() == io::ErrorKind::TimedOut;
                self.write_failed = true;
                self.body = None;
            }
        }
    }

    /// Close the message, send the envelope, and wait for the verdict.
    pub fn finish(mut self, envelope: &[u8]) -> QueueOutcome {
        if self.body.take().is_none() {
            self.write_failed = true;
        }
        if let Some(env) = self.envelope.take() {
            if !self.write_failed {
                let deadline = Instant::now() + self.timeout;
                if let Err(e) =
                    child::write_until(env.as_fd(), envelope, child::group(&self.child), deadline)
                {
                    self.timed_out |= e.kind() == io::ErrorKind::TimedOut;
                    self.write_failed = true;
                }
            }
        }
        self.wait()
    }

    /// Close both pipes without an envelope: qmail-queue stores nothing.
    pub fn abort(mut self) {
        self.body = None;
        self.envelope = None;
        let _ = self.wait();
    }

    /// Wait for the exit, at most `timeout`; a queue program that does not
    /// exit by then (or that stopped reading) is killed.
    fn wait(&mut self) -> QueueOutcome {
        let status = if self.timed_out {
            None
        } else {
            child::wait_until(&mut self.child, Instant::now() + self.timeout)
                .ok()
                .flatten()
        };
        let exit = match status {
            Some(st) => match (st.code(), st.signal()) {
                (Some(c), _) => QueueExit::Exited(c),
                (None, Some(_)) => QueueExit::Signaled,
                (None, None) => QueueExit::Unknown,
            },
            None => {
                child::kill_group(&mut self.child);
                QueueExit::TimedOut
            }
        };
        QueueOutcome {
            exit,
            write_failed: self.write_failed,
        }
    }
}
