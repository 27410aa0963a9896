//! Edge: the command line's AUTH back-end, and running it.
//!
//! Both invocation forms in use are accepted, so run scripts need no edit:
//!
//! - `qmail-smtpd checkpassword subprogram [args…]` (sagredo, Hoffmann);
//! - `qmail-smtpd hostname checkpassword subprogram [args…]` (jms1,
//!   Dabrowski): the hostname goes into CRAM-MD5 challenges.
//!
//! With at least three arguments, a first argument that contains a `.` and
//! no `/` is the hostname. Otherwise the first argument is the checkpassword
//! program when it contains a `/` or names a program on `PATH`, and else,
//! with at least two more arguments, the hostname.
//!
//! checkpassword (cr.yp.to/checkpwd/interface.html) gets
//! `user\0secret\0timestamp\0` on fd 3, a pipe. Its stdin and stdout are
//! `/dev/null`, never the client connection, so nothing it prints can reach
//! the client. To refuse logins that end up as root, checkpassword runs
//! this binary as its subprogram (`--checkpassword-child`), which reports
//! the uid it was given on fd 4 and then execs the real subprogram.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::auth::{Credentials, wipe};
use crate::smtp::session::AuthResult;

/// The argument that makes this binary the uid-reporting wrapper.
pub const CHILD_FLAG: &str = "--checkpassword-child";

/// The checkpassword program and what it runs on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub program: PathBuf,
    /// The subprogram and its arguments.
    pub subprogram: Vec<OsString>,
}

/// What the command line says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// jms1 form: the name for CRAM-MD5 challenges.
    pub hostname: Option<Vec<u8>>,
    pub backend: Option<Backend>,
}

/// Is `name` a program: a path, or found on `PATH`?
pub fn on_path(name: &OsStr) -> bool {
    name.as_bytes().contains(&b'/') || find_program(name).is_some()
}

/// A program as exec would find it: a path as it is (if it exists), a
/// bare name in the first `PATH` directory holding an executable file.
pub fn find_program(name: &OsStr) -> Option<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        let p = Path::new(name);
        return p.exists().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok())
}

/// Read the arguments after the program name.
pub fn parse_invocation(
    args: &[OsString],
    is_program: impl Fn(&OsStr) -> bool,
) -> Result<Invocation, String> {
    let Some(first) = args.first() else {
        return Ok(Invocation::default());
    };
    let bytes = first.as_bytes();
    let hostname_like = bytes.contains(&b'.') && !bytes.contains(&b'/');
    let (hostname, rest) = if !(hostname_like && args.len() >= 3) && is_program(first) {
        (None, args)
    } else if args.len() >= 3 {
        (Some(first.as_bytes().to_vec()), &args[1..])
    } else {
        return Err(format!(
            "{} is not a program, nor a hostname followed by checkpassword and subprogram: AUTH is off",
            Path::new(first).display()
        ));
    };
    match rest {
        [program, sub @ ..] if !sub.is_empty() => Ok(Invocation {
            hostname,
            backend: Some(Backend {
                program: PathBuf::from(program),
                subprogram: sub.to_vec(),
            }),
        }),
        _ => Err(format!(
            "checkpassword {} given without a subprogram to run (e.g. /bin/true): AUTH is off",
            Path::new(&rest[0]).display()
        )),
    }
}

/// The wrapper mode: report our uid on fd 4, then become the subprogram.
/// Returns only if exec failed.
#[allow(unsafe_code)]
pub fn child_main(subprogram: &[OsString]) -> i32 {
    // SAFETY: fd 4 was set up by our parent as the write end of the uid
    // pipe; fcntl confirms it is open before we take ownership, and nothing
    // else in this process uses it.
    let report = nix::fcntl::fcntl(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(4) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .ok()
    .map(|_| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(4) });
    if let Some(fd) = report {
        let mut f = File::from(fd);
        let _ = writeln!(f, "uid {}", nix::unistd::getuid());
        // Dropped here: closed before the exec.
    }
    let Some((prog, args)) = subprogram.split_first() else {
        return 2;
    };
    let e = Command::new(prog).args(args).exec();
    crate::log::line(&format!(
        "unable to run checkpassword subprogram {}: {e}",
        Path::new(prog).display()
    ));
    111
}

/// Run checkpassword on `creds`, at most `timeout`.
pub fn check(backend: &Backend, creds: &Credentials, timeout: Duration) -> (AuthResult, String) {
    match run(backend, creds, timeout) {
        Ok(r) => r,
        Err(e) => (
            AuthResult::TempFail,
            format!("cannot run {}: {e}", backend.program.display()),
        ),
    }
}

/// This binary's path, to run as checkpassword's subprogram. After an
/// upgrade replaced the file, Linux names the running one "… (deleted)":
/// the new file at the same path understands the same flag.
fn own_path() -> std::io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bytes = me.as_os_str().as_bytes();
    Ok(match bytes.strip_suffix(b" (deleted)") {
        Some(b) => PathBuf::from(OsStr::from_bytes(b)),
        None => me,
    })
}

#[allow(unsafe_code)]
fn run(
    backend: &Backend,
    creds: &Credentials,
    timeout: Duration,
) -> std::io::Result<(AuthResult, String)> {
    let (cred_read, cred_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (uid_read, uid_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let me = own_path()?;
    let mut cmd = Command::new(&backend.program);
    cmd.arg(&me)
        .arg(CHILD_FLAG)
        .args(&backend.subprogram)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0);
    let (cr, uw) = (cred_read.as_raw_fd(), uid_write.as_raw_fd());
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (fcntl, dup2, close), on fds that stay open in the parent until
    // spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc::{F_DUPFD, close, dup2, fcntl};
            // The pipes may themselves be fds 3 and 4: move both out of the
            // way first. dup2 clears FD_CLOEXEC on the copies it makes.
            let high = [fcntl(cr, F_DUPFD, 10), fcntl(uw, F_DUPFD, 10)];
            for (from, to) in high.into_iter().zip([3, 4]) {
                if from < 0 || dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                close(from);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(cred_read);
    drop(uid_write);
    let deadline = Instant::now() + timeout;

    let mut record = Vec::with_capacity(crate::auth::MAX_RECORD);
    creds.record(&mut record);
    let mut w = File::from(cred_write);
    // At most 512 bytes: fits in a pipe buffer, never blocks.
    let _ = w.write_all(&record);
    drop(w);
    wipe(&mut record);

    // The uid report ends when the wrapper execs, or checkpassword exits.
    let mut r = File::from(uid_read);
    let Some((report, status)) = crate::child::report_and_exit(&mut child, &mut r, 64, deadline)?
    else {
        return Ok((
            AuthResult::TempFail,
            format!("timed out after {}s: killed", timeout.as_secs()),
        ));
    };
    let reported_uid = std::str::from_utf8(&report)
        .ok()
        .and_then(|s| s.strip_prefix("uid "))
        .and_then(|s| s.trim().parse::<u32>().ok());
    Ok(match (status.code(), status.signal()) {
        (Some(0), _) => match reported_uid {
            Some(0) => (AuthResult::Rejected, "login as uid 0 refused".into()),
            Some(_) => (AuthResult::Accepted, String::new()),
            None => (
                AuthResult::Accepted,
                "checkpassword did not run the subprogram wrapper: uid unknown".into(),
            ),
        },
        (Some(1 | 2), _) => (AuthResult::Rejected, String::new()),
        (Some(111), _) => (AuthResult::TempFail, "temporary failure (exit 111)".into()),
        (Some(c), _) => (AuthResult::Rejected, format!("exit {c}")),
        (None, Some(sig)) => (AuthResult::TempFail, format!("killed by signal {sig}")),
        (None, None) => (AuthResult::TempFail, "unknown exit".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn both_invocation_forms() {
        let known = |p: &OsStr| p.as_bytes().contains(&b'/') || p == "checkpassword";
        let inv = |a: &[&str]| parse_invocation(&args(a), known);
        assert_eq!(inv(&[]), Ok(Invocation::default()));
        let sagredo = inv(&["/bin/checkpassword", "/bin/true"]).unwrap();
        assert_eq!(sagredo.hostname, None);
        let b = sagredo.backend.unwrap();
        assert_eq!(b.program, PathBuf::from("/bin/checkpassword"));
        assert_eq!(b.subprogram, args(&["/bin/true"]));
        let jms1 = inv(&["mx.example.org", "/bin/checkpassword", "/bin/true"]).unwrap();
        assert_eq!(jms1.hostname.as_deref(), Some(&b"mx.example.org"[..]));
        assert_eq!(jms1.backend.unwrap().subprogram, args(&["/bin/true"]));
        let with_args = inv(&["/bin/vchkpw", "/usr/bin/prog", "-x"]).unwrap();
        assert_eq!(with_args.hostname, None);
        assert_eq!(
            with_args.backend.unwrap().subprogram,
            args(&["/usr/bin/prog", "-x"])
        );
        let bare = inv(&["checkpassword", "true", "x"]).unwrap();
        assert_eq!(bare.hostname, None);
        // A host name is a host name even if a program has a dotted name.
        let dotted = parse_invocation(&args(&["mx.example.org", "/bin/cp", "/bin/true"]), |_| true);
        assert_eq!(
            dotted.unwrap().hostname.as_deref(),
            Some(&b"mx.example.org"[..])
        );
        assert!(inv(&["/bin/checkpassword"]).is_err());
        assert!(inv(&["mx.example.org", "/bin/checkpassword"]).is_err());
    }
}
