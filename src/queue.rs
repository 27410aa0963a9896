//! Edge: run qmail-queue (or `QMAILQUEUE`) for one message.
//!
//! The message goes to the child's fd 0 and, once that is closed, the
//! envelope to its fd 1 (qmail-queue(8)). qmail-queue stores nothing unless
//! it reads a complete envelope, so aborting is simply closing both pipes
//! without one. The child gets fresh pipes on fd 0 and fd 1 and inherits
//! fd 2; it never sees the client connection.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use nix::fcntl::OFlag;

use crate::smtp::session::{QueueExit, QueueOutcome};

pub struct Queue {
    child: Child,
    body: Option<ChildStdin>,
    envelope: Option<File>,
    write_failed: bool,
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
    /// removes a variable).
    pub fn spawn(program: &Path, env: &[(String, Option<Vec<u8>>)]) -> io::Result<Queue> {
        use std::os::unix::ffi::OsStrExt;
        let (env_read, env_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let mut cmd = Command::new(program);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, std::ffi::OsStr::from_bytes(v)),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_read))
            .stderr(Stdio::inherit())
            .spawn()?;
        let body = child.stdin.take();
        Ok(Queue {
            child,
            body,
            envelope: Some(File::from(env_write)),
            write_failed: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send message bytes. A failure (qmail-queue exited early) is
    /// remembered and later bytes are dropped; the client's DATA is still
    /// read to its end.
    pub fn write_body(&mut self, data: &[u8]) {
        if let Some(body) = &mut self.body {
            if body.write_all(data).is_err() {
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
        if let Some(mut env) = self.envelope.take() {
            if self.write_failed || env.write_all(envelope).is_err() {
                self.write_failed = true;
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

    fn wait(&mut self) -> QueueOutcome {
        let exit = match self.child.wait() {
            Ok(st) => match (st.code(), st.signal()) {
                (Some(c), _) => QueueExit::Exited(c),
                (None, Some(_)) => QueueExit::Signaled,
                (None, None) => QueueExit::Unknown,
            },
            Err(_) => QueueExit::Unknown,
        };
        QueueOutcome {
            exit,
            write_failed: self.write_failed,
        }
    }
}
