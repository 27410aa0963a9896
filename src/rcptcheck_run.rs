//! Edge: run the RCPTCHECK program (see [`crate::rcptcheck`]) for one
//! recipient. argv is the program alone; the environment is ours plus the
//! session's variables; stdin is `/dev/null` (never the client's socket,
//! which under TLS carries ciphertext); stdout goes to our stderr (the
//! log); fd 4 is a pipe for its reply, of which at most
//! [`MAX_FD4_REPLY`](crate::rcptcheck::MAX_FD4_REPLY) bytes are kept. It
//! runs in a process group of its own, killed when the timeout passes.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::rcptcheck::{Exit, MAX_FD4_REPLY, Outcome};

/// Run `program` with `env` added; never fails (a failure is an outcome).
pub fn run(program: &[u8], env: &[(String, Vec<u8>)], timeout: Duration) -> Outcome {
    match spawn_and_wait(program, env, timeout) {
        Ok(o) => o,
        Err(e) => {
            crate::log::line(&format!(
                "RCPTCHECK: cannot run {}: {e}",
                String::from_utf8_lossy(program)
            ));
            Outcome {
                exit: Exit::NotRun,
                fd4: Vec::new(),
            }
        }
    }
}

#[allow(unsafe_code)]
fn spawn_and_wait(
    program: &[u8],
    env: &[(String, Vec<u8>)],
    timeout: Duration,
) -> std::io::Result<Outcome> {
    let (reply_read, reply_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let log = std::io::stderr().as_fd().try_clone_to_owned()?;
    let mut cmd = Command::new(OsStr::from_bytes(program));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::inherit())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, OsStr::from_bytes(v));
    }
    let w = reply_write.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (fcntl, dup2, close) on an fd that stays open in the parent until
    // spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc::{F_DUPFD, close, dup2, fcntl};
            // The pipe may itself be fd 4: move it out of the way first.
            // dup2 clears FD_CLOEXEC on the copy it makes.
            let high = fcntl(w, F_DUPFD, 10);
            if high < 0 || dup2(high, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            close(high);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(reply_write);
    let deadline = Instant::now() + timeout;
    let mut r = File::from(reply_read);
    // Read fd 4 to its end (the program exited, or closed it).
    let Some((fd4, status)) =
        crate::child::report_and_exit(&mut child, &mut r, MAX_FD4_REPLY + 2, deadline)?
    else {
        return Ok(Outcome {
            exit: Exit::TimedOut,
            fd4: Vec::new(),
        });
    };
    let exit = match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Exited(c),
        _ => Exit::Signaled,
    };
    Ok(Outcome { exit, fd4 })
}
