//! Edge: read the PROXY protocol header a load balancer sends before the
//! client's first byte (`PROXY_PROTOCOL=1`), apply the real client's
//! tcprules entry (`PROXY_RULES`), and make the process environment say
//! what tcpserver would have said to a direct client, so that the session,
//! the log and every child (checkpassword, qmail-queue…) see the real
//! client. Parsing and the environment changes are decided in
//! [`crate::core::proxy`]; this module only reads bytes and files.
//!
//! Never a byte past the header: on a socket the bytes are peeked first
//! and only the header's are consumed; elsewhere (a pipe) it reads no more
//! than the header can be long. What follows belongs to SMTP (a client may
//! pipeline EHLO behind the header) or, under SMTPS, to the TLS handshake.

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, recv};

use crate::core::proxy::{self, EnvChange, Header, HeaderError, MAX_HEADER};
use crate::core::tcprules::{self, Rule};
use crate::io::control::Env;

/// Why no header could be had.
#[derive(Debug)]
pub enum ReadError {
    Header(HeaderError),
    /// The connection ended first (`got` bytes of a header).
    Eof {
        got: usize,
    },
    /// Not whole within `timeoutsmtpd` (`got` bytes of it came).
    Timeout {
        got: usize,
    },
    Io(Errno),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Header(e) => e.fmt(f),
            ReadError::Eof { got } => write!(f, "connection closed after {got} bytes of header"),
            ReadError::Timeout { got } => {
                write!(f, "no whole header in time ({got} bytes came)")
            }
            ReadError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Wait for input until `deadline`.
fn wait(fd: BorrowedFd<'_>, deadline: Instant, got: usize) -> Result<(), ReadError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout { got });
        }
        let ms = u32::try_from(left.as_millis().max(1)).unwrap_or(u32::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Err(ReadError::Timeout { got }),
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Read exactly `buf.len()` bytes that are known to be there or coming.
fn read_exact(
    fd: BorrowedFd<'_>,
    mut buf: &mut [u8],
    deadline: Instant,
    got: usize,
) -> Result<(), ReadError> {
    while !buf.is_empty() {
        wait(fd, deadline, got)?;
        match nix::unistd::read(fd, buf) {
            Ok(0) => return Err(ReadError::Eof { got }),
            Ok(n) => buf = &mut buf[n..],
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(())
}

/// Read one PROXY header from `fd`, all of it within `timeout`, and not a
/// byte more.
pub fn read_header(fd: BorrowedFd<'_>, timeout: Duration) -> Result<Header, ReadError> {
    let deadline = Instant::now() + timeout;
    let mut acc: Vec<u8> = Vec::with_capacity(128);
    let mut peeked = vec![0u8; MAX_HEADER];
    let mut can_peek = true;
    loop {
        wait(fd, deadline, acc.len())?;
        if can_peek {
            let room = MAX_HEADER - acc.len();
            let n = match recv(fd.as_raw_fd(), &mut peeked[..room], MsgFlags::MSG_PEEK) {
                Ok(0) => return Err(ReadError::Eof { got: acc.len() }),
                Ok(n) => n,
                Err(Errno::ENOTSOCK) => {
                    can_peek = false;
                    continue;
                }
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(ReadError::Io(e)),
            };
            let have = acc.len();
            acc.extend_from_slice(&peeked[..n]);
            let parsed = proxy::parse(&acc).map_err(ReadError::Header)?;
            // Consume the header's bytes only: all of the peeked ones while
            // it is incomplete (they are all header), up to its end once
            // it is whole.
            let take = parsed.map_or(n, |h| h.len - have);
            acc.truncate(have);
            let start = acc.len();
            acc.resize(start + take, 0);
            read_exact(fd, &mut acc[start..], deadline, start)?;
            if let Some(h) = parsed {
                return Ok(h);
            }
        } else {
            let want = proxy::at_least_more(&acc).min(MAX_HEADER - acc.len());
            let start = acc.len();
            acc.resize(start + want, 0);
            match nix::unistd::read(fd, &mut acc[start..]) {
                Ok(0) => return Err(ReadError::Eof { got: start }),
                Ok(n) => acc.truncate(start + n),
                Err(Errno::EINTR | Errno::EAGAIN) => acc.truncate(start),
                Err(e) => return Err(ReadError::Io(e)),
            }
            if let Some(h) = proxy::parse(&acc).map_err(ReadError::Header)? {
                return Ok(h);
            }
        }
    }
}

/// Why the real client is not served.
#[derive(Debug)]
pub enum Refusal {
    /// Its tcprules entry says deny: close without a word.
    Deny { client: String, key: String },
    /// `PROXY_RULES` cannot be read: the connection gets 421.
    RulesUnreadable(String),
}

/// What to do with the connection after the header.
#[derive(Debug)]
pub enum Verdict {
    /// Serve it; the environment now describes the real client (`None`:
    /// a LOCAL or UNKNOWN header, the balancer's own addresses stand).
    Serve {
        client: Option<String>,
    },
    Refused(Refusal),
}

/// The rule tcpserver's `-x` would pick for `ip` in the CDB at `path`.
fn rule(db: &cdb::CDB, ip: &str, host: Option<&str>, info: Option<&str>) -> Option<Rule> {
    tcprules::lookup(|k| db.get(k).and_then(Result::ok), ip, host, info)
}

/// What a header changes: the environment, and the real client's rule
/// from `PROXY_RULES` when one matched (for `--explain`).
#[derive(Debug, Default)]
pub struct Changes {
    pub env: Vec<EnvChange>,
    pub client_rule: Option<Rule>,
}

/// The environment changes for `header`, given the environment tcpserver
/// set for the balancer's connection. Reads the `PROXY_RULES` CDB.
pub fn changes(header: &Header, env: &Env) -> Result<Changes, Refusal> {
    let Some(endpoints) = header.endpoints else {
        return Ok(Changes::default());
    };
    let text = |name: &str| {
        env.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let client = proxy::tcpserver_ip(endpoints.client.ip());
    let (mut balancer_rule, mut client_env, mut client_rule) = (Vec::new(), None, None);
    if let Some(path) = env.get("PROXY_RULES").filter(|p| !p.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        let db = cdb::CDB::open(path)
            .map_err(|e| Refusal::RulesUnreadable(format!("{}: {e}", path.display())))?;
        // The rule tcpserver applied for the balancer is undone: it
        // described the balancer, not the client.
        let balancer_ip = text("TCPREMOTEIP").unwrap_or_default();
        if let Some(r) = rule(
            &db,
            &balancer_ip,
            text("TCPREMOTEHOST").as_deref(),
            text("TCPREMOTEINFO").as_deref(),
        ) {
            balancer_rule = r.env;
        }
        // No DNS or ident for the real client: its IP decides.
        match rule(&db, &client, None, None) {
            Some(r) if !r.allow => return Err(Refusal::Deny { client, key: r.key }),
            Some(r) => {
                client_env = Some(r.env.clone());
                client_rule = Some(r);
            }
            None => client_env = Some(Vec::new()),
        }
    }
    Ok(Changes {
        env: proxy::env_changes(
            endpoints,
            env.get("TCP6REMOTEIP").is_some(),
            &balancer_rule,
            client_env.as_deref(),
        ),
        client_rule,
    })
}

/// Make the process environment say what `changes` say, so that every
/// child inherits the real client.
#[allow(unsafe_code)]
pub fn apply(changes: &[EnvChange]) {
    for (k, v) in changes {
        // SAFETY: called once at start-up, before any thread exists (this
        // program starts none), so nothing reads the environment
        // concurrently; names and values come from a parsed header or a
        // tcprules CDB and hold no NUL or `=` in the name (tcprules
        // values are split at the first `=`; `set_var` checks the rest).
        unsafe {
            match v {
                Some(v) if !k.is_empty() && !k.contains(['=', '\0']) && !v.contains('\0') => {
                    std::env::set_var(k, v)
                }
                None if !k.is_empty() && !k.contains(['=', '\0']) => std::env::remove_var(k),
                _ => {}
            }
        }
    }
}

/// Read the header on fd 0 and set the environment accordingly: the
/// process's, which every child inherits, and `env`, the snapshot the
/// settings are read from.
pub fn accept(env: &mut Env, timeout: Duration) -> Result<Verdict, ReadError> {
    let stdin = std::io::stdin();
    let header = read_header(std::os::fd::AsFd::as_fd(&stdin), timeout)?;
    Ok(match changes(&header, env) {
        Ok(Changes { env: c, .. }) => {
            apply(&c);
            env.apply(&c);
            Verdict::Serve {
                client: header.endpoints.map(|e| proxy::tcpserver_ip(e.client.ip())),
            }
        }
        Err(r) => Verdict::Refused(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    const V1: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n";

    /// On a socket the header is consumed and what follows stays unread,
    /// however the bytes were split.
    #[test]
    fn socket_reads_the_header_only() {
        for split in [V1.len(), 1, 7] {
            let (mut a, b) = UnixStream::pair().unwrap();
            let mut all = V1.to_vec();
            all.extend_from_slice(b"EHLO x\r\n");
            let writer = std::thread::spawn(move || {
                for chunk in all.chunks(split) {
                    a.write_all(chunk).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                a
            });
            let h = read_header(b.as_fd(), Duration::from_secs(5)).unwrap();
            let _a = writer.join().unwrap();
            assert_eq!(h.len, V1.len());
            let mut rest = [0u8; 64];
            let n = nix::unistd::read(b.as_fd(), &mut rest).unwrap();
            assert_eq!(&rest[..n], b"EHLO x\r\n", "split {split}");
        }
    }

    /// A pipe cannot be peeked: reads never go past the header either.
    #[test]
    fn pipe_reads_the_header_only() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut w = std::fs::File::from(w);
        w.write_all(V1).unwrap();
        w.write_all(b"\x16\x03\x01").unwrap();
        let h = read_header(r.as_fd(), Duration::from_secs(5)).unwrap();
        assert_eq!(h.len, V1.len());
        let mut rest = [0u8; 8];
        let n = nix::unistd::read(r.as_fd(), &mut rest).unwrap();
        assert_eq!(&rest[..n], b"\x16\x03\x01");
    }

    #[test]
    fn errors_eof_and_timeout() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"EHLO x\r\n").unwrap();
        assert!(matches!(
            read_header(b.as_fd(), Duration::from_secs(5)),
            Err(ReadError::Header(HeaderError::NotProxy))
        ));
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&V1[..10]).unwrap();
        let t = Instant::now();
        assert!(matches!(
            read_header(b.as_fd(), Duration::from_millis(200)),
            Err(ReadError::Timeout { got: 10 })
        ));
        assert!(t.elapsed() < Duration::from_secs(3));
        drop(a);
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&V1[..10]).unwrap();
        drop(a);
        assert!(matches!(
            read_header(b.as_fd(), Duration::from_secs(5)),
            Err(ReadError::Eof { got: 10 })
        ));
    }
}
