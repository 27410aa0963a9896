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
//! the client. To refuse logins that end up as root, the real user id the
//! process had when it exited is read with `waitid` (`si_uid`): having
//! checked the password, checkpassword becomes the user and execs the
//! subprogram in the same process, so that is the uid the login got.
//! (This binary used to be given as the subprogram, reporting its uid on a
//! pipe and then execing the real one: an exec more per AUTH, 0.6 ms.)

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use crate::io::child;
use crate::smtp::auth::{Credentials, wipe};
use crate::smtp::session::AuthResult;

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

fn run(
    backend: &Backend,
    creds: &Credentials,
    timeout: Duration,
) -> std::io::Result<(AuthResult, String)> {
    let (cred_read, cred_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let mut argv = vec![backend.program.as_os_str()];
    argv.extend(backend.subprogram.iter().map(OsString::as_os_str));
    let mut child = child::spawn(
        backend.program.as_os_str(),
        &argv,
        &[],
        child::Stdout::Null,
        &[(cred_read.as_fd(), 3)],
    )?;
    drop(cred_read);
    let deadline = Instant::now() + timeout;

    let mut record = Vec::with_capacity(crate::smtp::auth::MAX_RECORD);
    creds.record(&mut record);
    let mut w = File::from(cred_write);
    // At most 512 bytes: fits in a pipe buffer, never blocks.
    let _ = w.write_all(&record);
    drop(w);
    wipe(&mut record);

    let Some(status) = child::wait_until(&mut child, deadline)? else {
        child::kill_group(&mut child);
        return Ok((
            AuthResult::TempFail,
            format!("timed out after {}s: killed", timeout.as_secs()),
        ));
    };
    Ok(match (status.code(), status.signal()) {
        // The uid the process had when it exited: the subprogram's, which
        // checkpassword became the user to run.
        (Some(0), _) if child.exit_uid() == Some(0) => {
            (AuthResult::Rejected, "login as uid 0 refused".into())
        }
        (Some(0), _) => (AuthResult::Accepted, String::new()),
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
