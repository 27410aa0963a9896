//! Edge: run the RCPTCHECK program (see [`crate::core::rcptcheck`]) for one
//! recipient. argv is the program alone; the environment is ours plus the
//! session's variables; stdin is `/dev/null` (never the client's socket,
//! which under TLS carries ciphertext); stdout goes to our stderr (the
//! log); fd 4 is a pipe for its reply, of which at most
//! [`MAX_FD4_REPLY`] bytes are kept. It
//! runs in a process group of its own, killed when the timeout passes.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::io::child;

use crate::core::rcptcheck::{Exit, MAX_FD4_REPLY, Outcome};

/// Run `program` with `env` added; never fails (a failure is an outcome).
pub fn run(program: &[u8], env: &[(String, Vec<u8>)], timeout: Duration) -> Outcome {
    match spawn_and_wait(program, env, timeout) {
        Ok(o) => o,
        Err(e) => {
            crate::io::log::line(&format!(
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

fn spawn_and_wait(
    program: &[u8],
    env: &[(String, Vec<u8>)],
    timeout: Duration,
) -> std::io::Result<Outcome> {
    let (reply_read, reply_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let program = OsStr::from_bytes(program);
    let env: Vec<(&OsStr, &OsStr)> = env
        .iter()
        .map(|(k, v)| (OsStr::new(k), OsStr::from_bytes(v)))
        .collect();
    let mut child = child::spawn(
        program,
        &[program],
        &env,
        child::Stdout::Fd(std::io::stderr().as_fd()),
        &[(reply_write.as_fd(), 4)],
    )?;
    drop(reply_write);
    let deadline = Instant::now() + timeout;
    let mut r = File::from(reply_read);
    // Read fd 4 to its end (the program exited, or closed it).
    let Some((fd4, status)) =
        child::report_and_exit(&mut child, &mut r, MAX_FD4_REPLY + 2, deadline)?
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
