//! Shared harness for the end-to-end tests: a sandbox qmail home, the
//! built qmail-smtpd under a real `tcpserver`, optional tcprules CDB, and a
//! raw SMTP client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The built qmail-smtpd, staged (see [`staged`]).
pub fn bin() -> PathBuf {
    staged(PathBuf::from(env!("CARGO_BIN_EXE_qmail-smtpd")))
}

/// An example program built by `cargo test`, staged.
fn example(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_qmail-smtpd"))
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: run plain `cargo test` (not --all-targets), which builds examples",
        p.display()
    );
    staged(p)
}

pub fn fake_queue() -> PathBuf {
    example("fake-qmail-queue")
}

pub fn fake_checkpassword() -> PathBuf {
    example("fake-checkpassword")
}

/// `program`, hard-linked (or copied) into a directory below the temporary
/// directory that every user may enter. Some tests run the built programs
/// as `nobody` (tcpserver -U in the run scripts; checkpassword after it
/// drops root runs the uid-reporting wrapper, which is qmail-smtpd), and a
/// checkout may sit below a directory only root can enter, as on a CI box.
/// One directory per checkout; each test process stages afresh (link and
/// rename, atomic), so a rebuilt binary replaces the old one.
fn staged(program: PathBuf) -> PathBuf {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Mutex, OnceLock};
    static DONE: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_MANIFEST_DIR").hash(&mut h);
    let dir = std::env::temp_dir().join(format!("qsmtpd-test-bin-{:016x}", h.finish()));
    let dst = dir.join(program.file_name().unwrap());
    let mut done = DONE.get_or_init(|| Mutex::new(Vec::new())).lock().unwrap();
    if done.contains(&dst) {
        return dst;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = dir.join(format!(
        ".{}.{}",
        program.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(&program, &tmp).is_err() {
        std::fs::copy(&program, &tmp)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", program.display(), tmp.display()));
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &dst).unwrap();
    done.push(dst.clone());
    dst
}

pub fn need(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{tool} not found: run tests/run-all, which installs it");
}

pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // tcpserver and its children run in their own process group.
        let pgid = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Setup<'a> {
    name: &'a str,
    control: Vec<(&'a str, String)>,
    env: Vec<(&'a str, String)>,
    /// tcprules source lines; `None` runs tcpserver without `-x`.
    rules: Option<&'a str>,
    /// Make control/servercert.pem (a fresh self-signed RSA certificate).
    cert: bool,
    /// Wrap the queue so each run's TLS_* and AUTH environment is recorded.
    record_env: bool,
    /// Arguments after the program name (checkpassword and subprogram).
    args: Vec<String>,
}

impl<'a> Setup<'a> {
    pub fn new(name: &'a str) -> Setup<'a> {
        Setup {
            name,
            control: vec![
                ("me", "mx.test\n".into()),
                ("rcpthosts", "example.org\n.wild.example\n".into()),
            ],
            env: vec![],
            rules: None,
            cert: false,
            record_env: false,
            args: vec![],
        }
    }
    /// Arguments for qmail-smtpd, e.g. a hostname, checkpassword and
    /// subprogram.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }
    /// AUTH through fake-checkpassword (users alice:wonderland and
    /// bob:secret), in the sagredo invocation form; failures not delayed.
    pub fn auth(self) -> Self {
        let cp = fake_checkpassword();
        self.args(&[cp.to_str().unwrap(), "/bin/true"])
            .env("FAKECP_USERS", "alice:wonderland,bob:secret")
            .env("AUTH_FAILURE_DELAY", "0")
    }
    pub fn cert(mut self) -> Self {
        self.cert = true;
        self
    }
    pub fn record_env(mut self) -> Self {
        self.record_env = true;
        self
    }
    pub fn control(mut self, file: &'a str, text: &str) -> Self {
        self.control.retain(|(f, _)| *f != file);
        self.control.push((file, text.into()));
        self
    }
    pub fn env(mut self, k: &'a str, v: &str) -> Self {
        self.env.push((k, v.into()));
        self
    }
    pub fn rules(mut self, r: &'a str) -> Self {
        self.rules = Some(r);
        self
    }

    pub fn start(self) -> Server {
        need("tcpserver");
        let dir =
            std::env::temp_dir().join(format!("qsmtpd-e2e-{}-{}", self.name, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("control")).unwrap();
        std::fs::create_dir_all(dir.join("queue/new")).unwrap();
        for (f, text) in &self.control {
            std::fs::write(dir.join("control").join(f), text).unwrap();
        }
        if self.cert {
            make_cert(&dir.join("control/servercert.pem"));
        }
        let mut queue = fake_queue();
        if self.record_env {
            let wrapper = dir.join("queue-wrapper");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nenv | grep -E '^(TLS_|SMTPAUTH|SMTP_AUTH_USER|TCPREMOTEINFO)' | sort >> \"$FAKEQ_DIR/tls-env\"\nexec {}\n",
                    queue.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            queue = wrapper;
        }
        if let Some(rules) = self.rules {
            need("tcprules");
            let src = dir.join("rules.txt");
            std::fs::write(&src, rules).unwrap();
            let mut c = Command::new("tcprules")
                .arg(dir.join("rules.cdb"))
                .arg(dir.join("rules.tmp"))
                .stdin(std::fs::File::open(&src).unwrap())
                .spawn()
                .unwrap();
            assert!(c.wait().unwrap().success(), "tcprules failed");
        }
        // A port from free_port() may be taken by a parallel test before
        // tcpserver binds it; then tcpserver exits and the probe would
        // reach the other test's server. Only a probe that our own
        // qmail-smtpd logged counts; otherwise try another port.
        for _attempt in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("tcpserver");
            cmd.arg("-R").arg("-H").args(["-l", "mx.test"]);
            if self.rules.is_some() {
                cmd.arg("-x").arg(dir.join("rules.cdb"));
            }
            let log = dir.join("stderr.log");
            cmd.args(["127.0.0.1", &port.to_string()])
                .arg(bin())
                .args(&self.args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("QMAILHOME", &dir)
                .env("QMAILQUEUE", &queue)
                .env("FAKEQ_DIR", dir.join("queue"))
                .stdin(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .process_group(0);
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("start tcpserver");
            let deadline = Instant::now() + Duration::from_secs(10);
            let ours = loop {
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Our server logs every connection it serves.
                    let logged = Instant::now() + Duration::from_secs(5);
                    while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0
                        && Instant::now() < logged
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    break std::fs::metadata(&log).map_or(0, |m| m.len()) > 0;
                }
                assert!(Instant::now() < deadline, "tcpserver did not start");
                std::thread::sleep(Duration::from_millis(20));
            };
            if !ours {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(-(child.id() as i32)),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let _ = child.wait();
                continue;
            }
            // That probe connection was served; let it finish.
            std::thread::sleep(Duration::from_millis(50));
            return Server { dir, port, child };
        }
        panic!("could not start tcpserver on a free port");
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stored messages: (message, envelope), oldest first.
    pub fn queued(&self) -> Vec<(String, Vec<u8>)> {
        let new = self.dir.join("queue/new");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&new)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "env"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|env| {
                let msg = std::fs::read(env.with_extension("msg")).unwrap();
                (
                    String::from_utf8_lossy(&msg).into_owned(),
                    std::fs::read(env).unwrap(),
                )
            })
            .collect()
    }

    pub fn swaks(&self, args: &[&str]) -> Output {
        need("swaks");
        Command::new("swaks")
            .args([
                "--server",
                &self.addr(),
                "--timeout",
                "20",
                "--helo",
                "client.test",
            ])
            .args(args)
            .output()
            .expect("run swaks")
    }

    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A raw client that reads replies.
pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(server: &Server) -> Client {
        Client::from(TcpStream::connect(server.addr()).unwrap())
    }
    pub fn from(s: TcpStream) -> Client {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, buf: Vec::new() }
    }
    pub fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).unwrap();
    }
    /// Read one whole (possibly multi-line) reply.
    pub fn reply(&mut self) -> String {
        let mut lines = String::new();
        loop {
            let line = self.line().unwrap_or_else(|| panic!("EOF after {lines:?}"));
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push_str(&line);
            if last {
                return lines;
            }
        }
    }
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&l).into_owned());
            }
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                // A signal interrupts a read with a timeout: not an EOF.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }
    /// True once the server closed the connection (after any pending data).
    pub fn closed(&mut self) -> bool {
        let mut tmp = [0u8; 4096];
        loop {
            match self.s.read(&mut tmp) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Closing with unread input makes the kernel reset.
                Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    }
}

/// A self-signed RSA-2048 certificate and its key in one PEM file, as
/// qmail-tls keeps control/servercert.pem.
pub fn make_cert(path: &std::path::Path) {
    make_cert_with(path, &["-newkey", "rsa:2048", "-days", "2"]);
}

/// The same with other `openssl req` key and validity options.
pub fn make_cert_with(path: &std::path::Path, options: &[&str]) {
    need("openssl");
    let dir = path.parent().unwrap();
    let (c, k) = (dir.join("c.tmp"), dir.join("k.tmp"));
    let o = Command::new("openssl")
        .args(["req", "-x509", "-nodes"])
        .args(options)
        .args(["-subj", "/CN=mx.test", "-keyout"])
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut pem = std::fs::read(&c).unwrap();
    pem.extend(std::fs::read(&k).unwrap());
    std::fs::write(path, pem).unwrap();
    let _ = std::fs::remove_file(c);
    let _ = std::fs::remove_file(k);
}

/// Run a Python script (the second, independent client); returns stdout.
pub fn python(script: &str) -> String {
    need("python3");
    let o = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(o.status.success(), "python failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---- Added for tests/hostile.rs: the log's summary lines. ----

impl Server {
    /// The summary lines (`end remote=... how=...`) logged so far: one per
    /// connection served, including the probe `Setup::start` makes.
    pub fn end_lines(&self) -> Vec<String> {
        self.stderr_log()
            .lines()
            .filter(|l| l.contains(": end remote="))
            .map(str::to_string)
            .collect()
    }

    /// Wait until at least `n` summary lines are logged; `None` if they do
    /// not all come within `within`.
    pub fn wait_end_lines(&self, n: usize, within: Duration) -> Option<Vec<String>> {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.end_lines();
            if lines.len() >= n {
                return Some(lines);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---- Added for tests/policy_service.rs and tests/examples.rs: background
// daemons (a policy server, postgrey). ----

/// A background process killed when dropped, with its scratch directory.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qsmtpd-policy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

pub fn wait_listening(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = if let Some(path) = addr.strip_prefix("unix:") {
            std::os::unix::net::UnixStream::connect(path).is_ok()
        } else {
            std::net::TcpStream::connect(addr).is_ok()
        };
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// postgrey listening on a loopback port, its own db and whitelists in a
/// temporary directory, greylisting for `delay` seconds.
pub fn postgrey(delay: u64) -> (Daemon, u16) {
    need("postgrey");
    let dir = scratch("postgrey");
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("whitelist_clients"), "").unwrap();
    std::fs::write(dir.join("whitelist_recipients"), "").unwrap();
    let _ = Command::new("chown")
        .args(["-R", "postgrey"])
        .arg(&dir)
        .status();
    let port = free_port();
    let child = Command::new("postgrey")
        .arg(format!("--inet=127.0.0.1:{port}"))
        .arg(format!("--dbdir={}", dir.join("db").display()))
        .arg(format!("--pidfile={}", dir.join("pid").display()))
        .arg(format!("--delay={delay}"))
        .arg(format!(
            "--whitelist-clients={}",
            dir.join("whitelist_clients").display()
        ))
        .arg(format!(
            "--whitelist-recipients={}",
            dir.join("whitelist_recipients").display()
        ))
        .args(["--auto-whitelist-clients=0", "--hostname=mx.test"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon { child, dir };
    wait_listening(&format!("127.0.0.1:{port}"), "postgrey");
    (d, port)
}

// ---- Added for tests/rcpt_checks.rs: cdb files made by the tests. ----

/// Write a cdb (the format of qmail's `cdbmake`) with these entries.
pub fn write_cdb(path: &std::path::Path, entries: &[(&str, &str)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = cdb::CDBMake::new(f).unwrap();
    for (k, v) in entries {
        w.add(k.as_bytes(), v.as_bytes()).unwrap();
    }
    w.finish().unwrap();
}

impl Server {
    /// A path below the server's qmail home.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}
