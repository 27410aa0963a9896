//! Edge: qmail-spp plugins — find `smtpplugins`, run a hook's plugins as
//! bounded children, hand their output to [`spp::Run`].
//!
//! Each plugin runs from the qmail home in a process group of its own, with
//! stdin `/dev/null`, stdout a pipe to us, stderr our log, and our
//! environment plus what the session adds; it never sees the client's
//! connection. A run is bounded by `SPP_TIMEOUT` seconds (then its group is
//! killed) and [`spp::MAX_OUTPUT`] bytes of output.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::core::policy::scan_ulong;
use crate::core::spp::{self, Exit, Hook, Plugin, Plugins, Run};
use crate::io::child;
use crate::io::control::{self, ControlError, Env};
use crate::io::log;

/// Default `SPP_TIMEOUT`, seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;

/// The plugins of this connection and how to run them.
#[derive(Debug, Clone)]
pub struct Hooks {
    pub plugins: Plugins,
    /// The file they came from.
    pub file: PathBuf,
    /// Plugins run from here (relative paths are below it).
    pub home: PathBuf,
    pub timeout: Duration,
}

/// The plugin file: `SPPCONFFILE` (relative to the qmail home) if set and
/// not empty, else `control/smtpplugins`.
pub fn file(env: &Env, home: &Path) -> PathBuf {
    match env.get("SPPCONFFILE").filter(|v| !v.is_empty()) {
        Some(f) => home.join(OsStr::from_bytes(f)),
        None => home.join("control/smtpplugins"),
    }
}

/// Read the plugins, if qmail-spp is on: `NOSPP` unset and the file there.
/// A file that exists but cannot be read is an error (`421`).
pub fn load(env: &Env, home: &Path) -> Result<Option<Hooks>, ControlError> {
    if env.get("NOSPP").is_some() {
        return Ok(None);
    }
    let file = file(env, home);
    let Some(lines) = control::read_lines(&file)? else {
        return Ok(None);
    };
    let timeout = env
        .get("SPP_TIMEOUT")
        .and_then(scan_ulong)
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(1);
    Ok(Some(Hooks {
        plugins: Plugins::parse(&lines),
        file,
        home: home.to_path_buf(),
        timeout: Duration::from_secs(timeout),
    }))
}

impl Hooks {
    /// Run `hook`'s plugins with `env` applied to our environment.
    pub fn run(&self, hook: Hook, env: &[(String, Option<Vec<u8>>)]) -> Run {
        spp::chain(hook, self.plugins.get(hook), |p, run| {
            match self.one(p, env, run) {
                Ok(exit) => exit,
                Err(e) => {
                    log::line(&format!("spp: {}: {e}", printable(&p.line)));
                    Exit::NotStarted
                }
            }
        })
    }

    fn one(
        &self,
        plugin: &Plugin,
        env: &[(String, Option<Vec<u8>>)],
        run: &mut Run,
    ) -> io::Result<Exit> {
        let (program, args) = plugin.argv();
        let mut cmd = Command::new(OsStr::from_bytes(program));
        cmd.args(args.iter().map(|a| OsStr::from_bytes(a)))
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, OsStr::from_bytes(v)),
                None => cmd.env_remove(k),
            };
        }
        // What earlier plugins of this hook set.
        for (k, v) in &run.env {
            match v {
                Some(v) => cmd.env(OsStr::from_bytes(k), OsStr::from_bytes(v)),
                None => cmd.env_remove(OsStr::from_bytes(k)),
            };
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                log::line(&format!(
                    "spp: unable to run {}: {e}",
                    printable(&plugin.line)
                ));
                return Ok(Exit::NotStarted);
            }
        };
        let deadline = Instant::now() + self.timeout;
        let stdout = child
            .stdout
            .take()
            .map(|o| File::from(std::os::fd::OwnedFd::from(o)));
        let read = match stdout {
            Some(out) => read_output(out, &child, deadline, run),
            None => Ok(Reading::Done),
        };
        let exit = match read {
            Ok(Reading::Done) => child::wait_until(&mut child, deadline)?,
            Ok(Reading::TimedOut) | Err(_) => None,
            Ok(Reading::TooMuch) => {
                child::kill_group(&mut child);
                return Ok(Exit::TooMuchOutput);
            }
        };
        Ok(match exit {
            None => {
                child::kill_group(&mut child);
                Exit::TimedOut
            }
            Some(st) => match (st.code(), st.signal()) {
                (Some(c), _) => Exit::Code(c),
                _ => Exit::Signal,
            },
        })
    }
}

/// How reading a plugin's output ended.
enum Reading {
    /// At its end, or at a verdict (the rest is not read).
    Done,
    TimedOut,
    TooMuch,
}

/// Feed the plugin's stdout to `run` line by line until EOF, the deadline
/// or the output bound. After a verdict the rest is read and dropped
/// (spp closes the pipe instead, which kills a plugin that writes one more
/// line with SIGPIPE: a "crash" for a plugin that did nothing wrong).
fn read_output(
    mut out: File,
    child: &Child,
    deadline: Instant,
    run: &mut Run,
) -> io::Result<Reading> {
    let group = child::group(child);
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut decided = false;
    let mut buf = [0u8; 4096];
    loop {
        if !child::readable_until(out.as_fd(), group, deadline)? {
            return Ok(Reading::TimedOut);
        }
        let n = match out.read(&mut buf) {
            Ok(0) => {
                if !pending.is_empty() && !decided {
                    run.line(&pending);
                }
                return Ok(Reading::Done);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n;
        if total > spp::MAX_OUTPUT {
            return Ok(Reading::TooMuch);
        }
        if decided {
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &pending[start..]) {
            let end = start + nl + 1;
            if run.line(&pending[start..end]) {
                decided = true;
                break;
            }
            start = end;
        }
        pending.drain(..start);
        if decided {
            pending.clear();
        }
    }
}

fn printable(s: &[u8]) -> String {
    crate::smtp::session::printable(s)
}
