//! Edge: talk to a Postfix policy service (`POLICY_SERVICE=inet:host:port`
//! or `unix:/path`). One connection per session, reused for every RCPT
//! (postgrey and policyd-spf expect that); every exchange is bounded by
//! `POLICY_SERVICE_TIMEOUT` and [`MAX_REPLY`] bytes. A service that
//! cannot be reached or answers garbage means
//! `POLICY_SERVICE_DEFAULT_ACTION` (Postfix's default: `451 4.3.5`).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::core::policy_delegation::{
    self, DEFAULT_FAILURE_ACTION, MAX_REPLY, Reply, Verdict, cipher_keysize, decide,
};
use crate::io::control::Env;

/// Default `POLICY_SERVICE_TIMEOUT`, seconds (Postfix's
/// `smtpd_policy_service_timeout` is 100).
pub const DEFAULT_TIMEOUT: u64 = 100;

/// Where the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Inet(String),
    Unix(PathBuf),
}

/// `inet:host:port` or `unix:/path`.
pub fn parse_target(s: &[u8]) -> Result<Target, String> {
    use std::os::unix::ffi::OsStrExt;
    let text = || String::from_utf8_lossy(s).into_owned();
    if let Some(rest) = s.strip_prefix(b"inet:") {
        let hp = std::str::from_utf8(rest).map_err(|_| format!("not ASCII: {}", text()))?;
        match hp.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                Ok(Target::Inet(hp.to_string()))
            }
            _ => Err(format!("expected inet:host:port: {}", text())),
        }
    } else if let Some(path) = s.strip_prefix(b"unix:").filter(|p| !p.is_empty()) {
        Ok(Target::Unix(PathBuf::from(std::ffi::OsStr::from_bytes(
            path,
        ))))
    } else {
        Err(format!("expected inet:host:port or unix:/path: {}", text()))
    }
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn set_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Conn::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The policy service of this connection.
pub struct PolicyClient {
    target: Result<Target, String>,
    timeout: Duration,
    failure_action: Vec<u8>,
    conn: Option<Conn>,
    /// Attributes from tcpserver's environment, the same for every request.
    fixed: Vec<(&'static str, Vec<u8>)>,
}

impl PolicyClient {
    /// The client `POLICY_SERVICE` asks for, if any. A value that cannot be
    /// parsed is kept as an error: every RCPT then gets the failure action
    /// (never a silent accept).
    pub fn from_env(env: &Env) -> Option<PolicyClient> {
        let spec = env.get("POLICY_SERVICE").filter(|v| !v.is_empty())?;
        let timeout = env
            .get("POLICY_SERVICE_TIMEOUT")
            .and_then(crate::core::policy::scan_ulong)
            .unwrap_or(DEFAULT_TIMEOUT)
            .max(1);
        let failure_action = env
            .get("POLICY_SERVICE_DEFAULT_ACTION")
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_FAILURE_ACTION)
            .to_vec();
        let fixed = [
            ("client_port", "TCPREMOTEPORT"),
            ("server_address", "TCPLOCALIP"),
            ("server_port", "TCPLOCALPORT"),
        ]
        .into_iter()
        .map(|(attr, var)| (attr, env.get(var).unwrap_or_default().to_vec()))
        .collect();
        Some(PolicyClient {
            target: parse_target(spec),
            timeout: Duration::from_secs(timeout),
            failure_action,
            conn: None,
            fixed,
        })
    }

    /// Ask about one recipient. `attrs` come from the session, `tls` is the
    /// TLS environment of the link (`TLS_PROTOCOL`, `TLS_CIPHER`).
    pub fn ask(
        &mut self,
        attrs: Vec<(&'static str, Vec<u8>)>,
        tls: &[(String, Option<Vec<u8>>)],
    ) -> Verdict {
        let mut attrs = attrs;
        let tls_var = |name: &str| {
            tls.iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        };
        if let (Some(p), Some(c)) = (tls_var("TLS_PROTOCOL"), tls_var("TLS_CIPHER")) {
            let bits = cipher_keysize(&String::from_utf8_lossy(&c));
            attrs.push(("encryption_protocol", p));
            attrs.push(("encryption_cipher", c));
            attrs.push(("encryption_keysize", bits.to_string().into_bytes()));
        }
        for (k, v) in &mut attrs {
            if *k == "instance" {
                let mut i = format!("{:x}.", std::process::id()).into_bytes();
                i.extend_from_slice(v);
                *v = i;
            }
        }
        attrs.extend(self.fixed.iter().cloned());
        let pairs: Vec<(&str, &[u8])> = attrs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let request = policy_delegation::request(&pairs);
        match self.exchange(&request) {
            Ok(action) => decide(&action),
            Err(why) => {
                self.conn = None;
                let mut v = decide(&self.failure_action);
                v.log = Some(format!(
                    "policy service: {why}: acting as \"{}\"",
                    crate::smtp::session::printable(&self.failure_action)
                ));
                v
            }
        }
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, String> {
        let target = self.target.as_ref().map_err(Clone::clone)?;
        let left = deadline.saturating_duration_since(Instant::now());
        let conn = match target {
            Target::Inet(hp) => {
                let addrs = hp.to_socket_addrs().map_err(|e| format!("{hp}: {e}"))?;
                let mut last = format!("{hp}: no address");
                let mut found = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, left.max(Duration::from_millis(1))) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = format!("connect to {hp}: {e}"),
                    }
                }
                Conn::Tcp(found.ok_or(last)?)
            }
            Target::Unix(p) => Conn::Unix(
                UnixStream::connect(p).map_err(|e| format!("connect to {}: {e}", p.display()))?,
            ),
        };
        Ok(conn)
    }

    /// Send the request and read the action, on the kept connection (one
    /// retry on a fresh one if the kept one was closed meanwhile).
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + self.timeout;
        let reused = self.conn.is_some();
        match self.try_exchange(request, deadline) {
            Err((why, true)) if reused => {
                self.conn = None;
                self.try_exchange(request, deadline)
                    .map_err(|(w, _)| w)
                    .map_err(|w| format!("{w} (after: {why})"))
            }
            r => r.map_err(|(w, _)| w),
        }
    }

    /// `Err((why, retryable))`.
    fn try_exchange(
        &mut self,
        request: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, (String, bool)> {
        if self.conn.is_none() {
            self.conn = Some(self.connect(deadline).map_err(|w| (w, false))?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let left = |d: Instant| {
            let l = d.saturating_duration_since(Instant::now());
            if l.is_zero() { None } else { Some(l) }
        };
        let io = |e: io::Error| {
            let timed_out = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
            if timed_out {
                ("timed out".to_string(), false)
            } else {
                (format!("{e}"), true)
            }
        };
        conn.set_timeout(left(deadline).ok_or(("timed out".to_string(), false))?)
            .map_err(io)?;
        conn.write_all(request).map_err(io)?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 1024];
        loop {
            let l = left(deadline).ok_or(("timed out".to_string(), false))?;
            conn.set_timeout(l).map_err(io)?;
            let n = match conn.read(&mut chunk) {
                Ok(0) => {
                    return Err(("connection closed by the service".into(), buf.is_empty()));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            buf.extend_from_slice(&chunk[..n]);
            match policy_delegation::parse_reply(&buf) {
                Reply::Partial if buf.len() <= MAX_REPLY + 2 => {}
                Reply::Partial => return Err(("reply too long".into(), false)),
                Reply::Action(a) => return Ok(a),
                Reply::Garbage(why) => return Err((why.to_string(), false)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target(b"inet:127.0.0.1:10023"),
            Ok(Target::Inet("127.0.0.1:10023".into()))
        );
        assert_eq!(
            parse_target(b"inet:[::1]:10023"),
            Ok(Target::Inet("[::1]:10023".into()))
        );
        assert_eq!(
            parse_target(b"unix:/run/postgrey.sock"),
            Ok(Target::Unix("/run/postgrey.sock".into()))
        );
        for bad in [
            &b"127.0.0.1:10023"[..],
            b"inet:host",
            b"inet::25",
            b"unix:",
            b"inet:h:99999",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
    }
}
