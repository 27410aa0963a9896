//! The operator examples in `control-examples/` run as shipped, so they
//! cannot rot: for each service directory, a copy of it (as an operator
//! copies it to /var/qmail/supervise) gets its tcprules CDB from its own
//! `Makefile`, and its own `run` is started the way supervise starts it
//! (in the service directory, its output piped into its own `log/run`),
//! with only the variables the scripts document overridden: a sandbox
//! qmail home, 127.0.0.1 and a free port, `nobody` for qmaild and qmaill,
//! the checkpassword stand-in, and `-H` so no test waits on DNS. The
//! memory limit is the scripts' own. swaks then drives each service.
//!
//! The scripts drop privileges (envuidgid + `tcpserver -U`, setuidgid),
//! which only root may do: these tests run as root, as supervise does and
//! as tests/run-all does.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Client, bin, fake_checkpassword, fake_queue, free_port, make_cert, need, postgrey, text,
};

/// The unprivileged user the services run as here (qmaild and qmaill in
/// a real installation).
const USER: &str = "nobody";

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("control-examples")
}

fn user() -> nix::unistd::User {
    nix::unistd::User::from_name(USER)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {USER} on this system"))
}

fn chown_user(path: &Path) {
    let u = user();
    std::os::unix::fs::chown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One service directory of control-examples/, running.
struct Service {
    /// Everything of this test: `qmail/` (QMAILHOME), `queue/` (where the
    /// fake qmail-queue stores), `svc/` (the copy of the service directory).
    base: PathBuf,
    svc: PathBuf,
    port: u16,
    run: Option<Child>,
    log: Option<Child>,
}

impl Service {
    /// Copy `control-examples/<name>`, put `extra_rules` (tcprules lines,
    /// e.g. for 127.0.0.2) in front of its tcp.smtp, build the CDB with its
    /// Makefile and start `run | log/run`.
    fn start(name: &str, extra_rules: &str) -> Service {
        Service::start_as(name, name, extra_rules)
    }

    /// The same, for one of several copies of a service (`instance` names
    /// the copy).
    fn start_as(name: &str, instance: &str, extra_rules: &str) -> Service {
        for tool in [
            "tcpserver",
            "tcprules",
            "envuidgid",
            "softlimit",
            "setuidgid",
            "multilog",
            "make",
            "swaks",
            "openssl",
        ] {
            need(tool);
        }
        assert!(
            nix::unistd::geteuid().is_root(),
            "the run scripts drop privileges to {USER}, which needs root: run as root (tests/run-all does)"
        );
        let src = examples_dir().join(name);
        for script in ["run", "log/run"] {
            let m = std::fs::metadata(src.join(script))
                .unwrap_or_else(|e| panic!("{name}/{script}: {e}"))
                .permissions()
                .mode();
            assert_eq!(m & 0o111, 0o111, "{name}/{script} must be executable");
        }

        let base =
            std::env::temp_dir().join(format!("qsmtpd-examples-{instance}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (home, queue, svc) = (base.join("qmail"), base.join("queue"), base.join("svc"));
        for d in [&base, &home, &home.join("control"), &home.join("bin")] {
            std::fs::create_dir_all(d).unwrap();
            mode(d, 0o755);
        }

        // control/: the certificate readable by the service's group only,
        // as the README says (root:qmaild, 0640).
        std::fs::write(home.join("control/me"), "mx.test\n").unwrap();
        std::fs::write(home.join("control/rcpthosts"), "example.org\n").unwrap();
        let cert = home.join("control/servercert.pem");
        make_cert(&cert);
        std::os::unix::fs::chown(&cert, Some(0), Some(user().gid.as_raw())).unwrap();
        mode(&cert, 0o640);
        std::os::unix::fs::symlink(bin(), home.join("bin/qmail-smtpd")).unwrap();
        std::os::unix::fs::symlink(fake_queue(), home.join("bin/qmail-queue")).unwrap();
        std::fs::create_dir_all(queue.join("new")).unwrap();
        chown_user(&queue);
        chown_user(&queue.join("new"));

        // The service directory, installed as the README says.
        let o = Command::new("cp")
            .arg("-R")
            .arg(&src)
            .arg(&svc)
            .output()
            .unwrap();
        assert!(o.status.success(), "cp: {}", text(&o));
        let rules = svc.join("tcp.smtp");
        let shipped = std::fs::read_to_string(&rules).unwrap();
        std::fs::write(&rules, format!("{extra_rules}{shipped}")).unwrap();
        let o = Command::new("make").arg("-C").arg(&svc).output().unwrap();
        assert!(o.status.success(), "make: {}", text(&o));
        assert!(svc.join("tcp.smtp.cdb").exists(), "make: {}", text(&o));
        std::fs::create_dir(svc.join("log/main")).unwrap();
        chown_user(&svc.join("log/main"));

        // run | log/run, as supervise runs a service and its log.
        let mut log = Command::new(svc.join("log/run"))
            .current_dir(svc.join("log"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOGUSER", USER)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(base.join("log-stderr")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start log/run");
        let pipe = log.stdin.take().unwrap();
        let port = free_port();
        let run = Command::new(svc.join("run"))
            .current_dir(&svc)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("QMAILHOME", &home)
            .env("SMTPD_USER", USER)
            .env("SMTPD_IP", "127.0.0.1")
            .env("SMTPD_PORT", port.to_string())
            .env("SMTPD_HOSTLOOKUP", "-H")
            .env("SMTPD_CHECKPASSWORD", fake_checkpassword())
            .env("FAKECP_USERS", "alice:wonderland")
            .env("FAKEQ_DIR", &queue)
            .stdin(Stdio::null())
            .stdout(pipe)
            .stderr(std::fs::File::create(base.join("run-stderr")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start run");
        let mut s = Service {
            base,
            svc,
            port,
            run: Some(run),
            log: Some(log),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = s.run.as_mut().unwrap().try_wait().unwrap() {
                panic!("{name}/run exited ({status}): {}", s.diagnostics());
            }
            assert!(
                Instant::now() < deadline,
                "{name}/run did not start listening: {}",
                s.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // That probe connection was served; let it finish.
        std::thread::sleep(Duration::from_millis(100));
        s
    }

    fn swaks(&self, args: &[&str]) -> Output {
        Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", self.port)])
            .args(["--timeout", "20", "--helo", "client.test"])
            .args(args)
            .output()
            .expect("run swaks")
    }

    /// swaks must succeed; its transcript.
    fn deliver(&self, args: &[&str]) -> String {
        let o = self.swaks(args);
        let t = text(&o);
        assert!(o.status.success(), "{t}\n{}", self.diagnostics());
        t
    }

    /// swaks must fail; its transcript.
    fn refused(&self, args: &[&str]) -> String {
        let o = self.swaks(args);
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        t
    }

    /// Stored messages: (message, envelope), oldest first; each checked to
    /// have been written by the unprivileged user.
    fn queued(&self) -> Vec<(String, String)> {
        let new = self.base.join("queue/new");
        let mut envs: Vec<PathBuf> = std::fs::read_dir(&new)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "env"))
            .collect();
        envs.sort();
        envs.iter()
            .map(|env| {
                let msg = env.with_extension("msg");
                assert_eq!(
                    std::fs::metadata(&msg).unwrap().uid(),
                    user().uid.as_raw(),
                    "qmail-queue ran as {USER}, not root"
                );
                (
                    std::fs::read_to_string(msg).unwrap(),
                    String::from_utf8(std::fs::read(env).unwrap()).unwrap(),
                )
            })
            .collect()
    }

    /// What multilog has written to log/main/current so far.
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.svc.join("log/main/current")).unwrap_or_default()
    }

    /// For failure messages: the log (once it has caught up) and anything
    /// the scripts wrote elsewhere.
    fn diagnostics(&self) -> String {
        std::thread::sleep(Duration::from_millis(500));
        let read = |f: &str| std::fs::read_to_string(self.base.join(f)).unwrap_or_default();
        format!(
            "log/main/current:\n{}run's stderr:\n{}log/run's stderr:\n{}",
            self.log_text(),
            read("run-stderr"),
            read("log-stderr")
        )
    }

    /// Wait until log/main/current has a line containing `want`.
    fn logged(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log_text();
            if log.contains(want) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{want:?} not in log/main/current:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log must be multilog's (TAI64N stamps) and hold the tcpserver
    /// and qmail-smtpd lines; nothing may have gone elsewhere.
    fn check_log(&self, want: &[&str]) {
        let log = self.logged("tcpserver: status: 0/");
        for line in log.lines() {
            assert!(
                line.starts_with('@') && line.as_bytes().get(25) == Some(&b' '),
                "not a multilog t line: {line:?}"
            );
        }
        for w in want {
            self.logged(w);
        }
        for f in ["run-stderr", "log-stderr"] {
            let s = std::fs::read_to_string(self.base.join(f)).unwrap();
            assert!(s.is_empty(), "{f}: {s}");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Each script runs in its own process group: tcpserver and its
        // children in run's, multilog in log's.
        for child in [self.run.take(), self.log.take()].into_iter().flatten() {
            let mut child = child;
            let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The line of `svc`'s shipped tcp.smtp for the example address
/// `example_ip`, moved to `ip`: so the tests check what the example line
/// does, not a copy of it.
fn example_rule(svc: &str, example_ip: &str, ip: &str) -> String {
    let rules = std::fs::read_to_string(examples_dir().join(svc).join("tcp.smtp")).unwrap();
    let line = rules
        .lines()
        .find(|l| l.starts_with(&format!("{example_ip}:")))
        .unwrap_or_else(|| panic!("{svc}/tcp.smtp has no line for {example_ip}"));
    format!("{ip}{}\n", &line[example_ip.len()..])
}

fn env_of(from: &str, to: &str) -> String {
    format!("F{from}\0T{to}\0\0")
}

#[test]
fn smtpd_25_mx_delivers_offers_starttls_relays_only_for_relayclient() {
    // 127.0.0.2 is this host too, but without RELAYCLIENT: a stranger.
    let s = Service::start("smtpd-25", "127.0.0.2:allow\n");

    // Plain delivery to a local domain, from a stranger; STARTTLS offered,
    // AUTH not.
    let t = s.deliver(&[
        "--local-interface",
        "127.0.0.2",
        "--from",
        "a@sender.test",
        "--to",
        "u@example.org",
    ]);
    assert!(
        t.contains("<-  250-STARTTLS") || t.contains("<-  250 STARTTLS"),
        "{t}"
    );
    assert!(!t.contains("250-AUTH") && !t.contains("250 AUTH"), "{t}");
    // The same over STARTTLS: the certificate is readable by the service.
    let t = s.deliver(&["--tls", "--from", "a@sender.test", "--to", "u@example.org"]);
    assert!(t.contains("220 2.0.0 Ready to start TLS"), "{t}");
    assert!(!t.contains("250-AUTH") && !t.contains("250 AUTH"), "{t}");
    // Relaying: refused to the stranger, allowed to 127.0.0.1
    // (127.:allow,RELAYCLIENT="").
    let t = s.refused(&["--local-interface", "127.0.0.2", "--to", "x@elsewhere.test"]);
    assert!(
        t.contains("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts"),
        "{t}"
    );
    s.deliver(&["--from", "a@sender.test", "--to", "x@elsewhere.test"]);
    // No AUTH at all: no checkpassword on the command line.
    let mut c = Client::from(std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap());
    assert!(c.reply().starts_with("220 mx.test"));
    c.send(b"EHLO c.test\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\nQUIT\r\n");
    c.reply();
    assert_eq!(c.reply(), "503 5.5.1 AUTH not available\r\n");

    let q = s.queued();
    assert_eq!(q.len(), 3, "{q:?}");
    assert!(
        q[0].0.contains("(127.0.0.2)\n  by mx.test with ESMTP; "),
        "{}",
        q[0].0
    );
    assert!(
        q[1].0.contains("  by mx.test with ESMTPS (TLSv1.3 "),
        "{}",
        q[1].0
    );
    assert_eq!(q[0].1, env_of("a@sender.test", "u@example.org"));
    assert_eq!(q[2].1, env_of("a@sender.test", "x@elsewhere.test"));
    s.check_log(&["tcpserver: ok ", ":127.0.0.2::", "tcpserver: end "]);
}

#[test]
fn smtpd_25_greylist_greylists_strangers_inside_tls() {
    let (_postgrey, port) = postgrey(2);
    // The shipped default rule names postgrey on 10023; the stranger here
    // (127.0.0.2) gets the same rule with this test's postgrey.
    let shipped =
        std::fs::read_to_string(examples_dir().join("smtpd-25-greylist/tcp.smtp")).unwrap();
    assert!(
        shipped.contains("\n:allow,POLICY_SERVICE=\"inet:127.0.0.1:10023\"\n"),
        "{shipped}"
    );
    let rule = format!("127.0.0.2:allow,POLICY_SERVICE=\"inet:127.0.0.1:{port}\"\n");
    let s = Service::start("smtpd-25-greylist", &rule);
    let stranger = [
        "--local-interface",
        "127.0.0.2",
        "--tls",
        "--from",
        "a@sender.test",
        "--to",
        "u@example.org",
    ];
    let t = s.refused(&stranger);
    // swaks marks an error reply inside TLS with "<~*".
    assert!(t.contains("<~* 450 4.7.1 Greylisted"), "{t}");
    // This host (RELAYCLIENT) is not greylisted.
    s.deliver(&["--from", "a@sender.test", "--to", "x@elsewhere.test"]);
    std::thread::sleep(Duration::from_secs(3));
    let t = s.deliver(&stranger);
    assert!(t.contains("220 2.0.0 Ready to start TLS"), "{t}");
    let q = s.queued();
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(!q[0].0.contains("X-Greylist"), "{}", q[0].0);
    assert!(q[1].0.contains("\nX-Greylist: delayed "), "{}", q[1].0);
    assert!(q[1].0.contains("with ESMTPS (TLSv1.3 "), "{}", q[1].0);
}

#[test]
fn smtpd_587_submission_needs_starttls_then_auth() {
    let webmail = example_rule("smtpd-587", "192.0.2.80", "127.0.0.2");
    let s = Service::start("smtpd-587", &webmail);
    let msg = ["--from", "alice@example.org", "--to", "x@elsewhere.test"];

    // Before STARTTLS: no AUTH offered, MAIL refused.
    let t = s.refused(&msg);
    assert!(
        t.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{t}"
    );
    assert!(!t.contains("250-AUTH") && !t.contains("250 AUTH"), "{t}");
    // After STARTTLS, without AUTH: refused.
    let mut args = vec!["--tls"];
    args.extend(msg);
    let t = s.refused(&args);
    assert!(
        t.contains("250-AUTH PLAIN LOGIN") || t.contains("250 AUTH PLAIN LOGIN"),
        "{t}"
    );
    assert!(t.contains("530 5.7.0 Authentication required"), "{t}");
    // A wrong password: refused.
    let mut args = vec!["--tls", "--auth", "PLAIN", "--auth-user", "alice"];
    args.extend(["--auth-password", "guess"]);
    args.extend(msg);
    let t = s.refused(&args);
    assert!(
        t.contains("535 5.7.8 Authentication credentials invalid"),
        "{t}"
    );
    // STARTTLS and AUTH: relayed.
    let mut args = vec!["--tls", "--auth", "PLAIN", "--auth-user", "alice"];
    args.extend(["--auth-password", "wonderland"]);
    args.extend(msg);
    let t = s.deliver(&args);
    assert!(t.contains("235 2.7.0 Authentication successful"), "{t}");
    // The example per-IP line (a webmail host without TLS): AUTH in clear
    // works, and is still required.
    let mut args = vec!["--local-interface", "127.0.0.2"];
    args.extend(msg);
    let t = s.refused(&args);
    assert!(t.contains("530 5.7.0 Authentication required"), "{t}");
    args.extend(["--auth", "LOGIN", "--auth-user", "alice"]);
    args.extend(["--auth-password", "wonderland"]);
    s.deliver(&args);

    let q = s.queued();
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q[0].0
            .contains("(alice@127.0.0.1)\n  by mx.test with ESMTPSA (TLSv1.3 "),
        "{}",
        q[0].0
    );
    assert!(
        q[1].0
            .contains("(alice@127.0.0.2)\n  by mx.test with ESMTPA; "),
        "{}",
        q[1].0
    );
    for (_, env) in &q {
        assert_eq!(env, &env_of("alice@example.org", "x@elsewhere.test"));
    }
    s.check_log(&[
        "AUTH ok: remote=127.0.0.1 mech=PLAIN user=\"alice\"",
        "AUTH ok: remote=127.0.0.2 mech=LOGIN user=\"alice\"",
        "AUTH failed: remote=127.0.0.1 mech=PLAIN user=\"alice\"",
    ]);
    assert!(!s.log_text().contains("wonderland"), "{}", s.log_text());
}

#[test]
fn smtpd_465_smtps_needs_auth() {
    let big = example_rule("smtpd-465", "192.0.2.80", "127.0.0.2");
    let s = Service::start("smtpd-465", &big);
    let msg = ["--from", "alice@example.org", "--to", "x@elsewhere.test"];

    // TLS from the first byte and AUTH: relayed.
    let mut args = vec![
        "--tls-on-connect",
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice",
    ];
    args.extend(["--auth-password", "wonderland"]);
    args.extend(msg);
    let t = s.deliver(&args);
    assert!(t.contains("235 2.7.0 Authentication successful"), "{t}");
    // Without AUTH: refused.
    let mut args = vec!["--tls-on-connect"];
    args.extend(msg);
    let t = s.refused(&args);
    assert!(t.contains("530 5.7.0 Authentication required"), "{t}");
    assert!(!t.contains("STARTTLS"), "{t}");
    // In clear: no greeting, nothing readable.
    let mut c = Client::from(std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap());
    c.send(b"EHLO c.test\r\n");
    let first = c.line();
    assert!(
        first.as_deref().is_none_or(|l| !l.starts_with("220")),
        "{first:?}"
    );
    // The example per-IP line: a bigger DATABYTES for that client.
    let t = s.deliver(&["--tls-on-connect", "--quit-after", "EHLO"]);
    assert!(t.contains("250-SIZE 0"), "{t}");
    let t = s.deliver(&[
        "--tls-on-connect",
        "--quit-after",
        "EHLO",
        "--local-interface",
        "127.0.0.2",
    ]);
    assert!(t.contains("250-SIZE 52428800"), "{t}");

    let q = s.queued();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(
        q[0].0
            .contains("(alice@127.0.0.1)\n  by mx.test with ESMTPSA (TLSv1.3 "),
        "{}",
        q[0].0
    );
    assert_eq!(q[0].1, env_of("alice@example.org", "x@elsewhere.test"));
    s.check_log(&[
        "AUTH ok: remote=127.0.0.1 mech=LOGIN user=\"alice\"",
        "TLS handshake failed",
    ]);
}

/// Every path in the run scripts comes from a variable with a default, so
/// the tests above (and operators) can move them.
#[test]
fn scripts_take_every_setting_from_variables() {
    for svc in [
        "smtpd-25",
        "smtpd-25-greylist",
        "smtpd-587",
        "smtpd-465",
        "smtpd-587-cert",
    ] {
        let dir = examples_dir().join(svc);
        for f in ["Makefile", "tcp.smtp", "run", "log/run"] {
            assert!(dir.join(f).is_file(), "{svc}/{f} missing");
        }
        let run = std::fs::read_to_string(dir.join("run")).unwrap();
        assert!(run.starts_with("#!/bin/sh\n"), "{svc}/run");
        for line in run.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if line.contains("/var/qmail") {
                assert!(
                    line.starts_with("QMAILHOME=${QMAILHOME:-/var/qmail}"),
                    "{svc}/run: a path not from QMAILHOME: {line}"
                );
            }
            assert!(
                !line.contains("qmaild") || line.starts_with("SMTPD_USER="),
                "{line}"
            );
        }
        assert!(run.contains("exec envuidgid \"$SMTPD_USER\""), "{svc}/run");
        assert!(
            run.contains("-U \"$SMTPD_IP\" \"$SMTPD_PORT\""),
            "{svc}/run"
        );
        let log = std::fs::read_to_string(dir.join("log/run")).unwrap();
        assert!(
            log.contains("exec setuidgid \"$LOGUSER\" multilog t"),
            "{svc}/log/run"
        );
    }
}

/// `openssl ARGS` in `dir`, which must succeed.
fn openssl_in(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
}

#[test]
fn smtpd_587_cert_relays_for_listed_client_certificates() {
    let s = Service::start("smtpd-587-cert", "");
    // A CA and a client certificate for relay@example.org, made here;
    // clientca.pem and tlsclients as the README says (no secret in them).
    let ca = s.base.join("ca");
    std::fs::create_dir_all(&ca).unwrap();
    openssl_in(
        &ca,
        &[
            "req",
            "-x509",
            "-nodes",
            "-days",
            "30",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=Example client CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        ca.join("ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl_in(
        &ca,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=scanner/emailAddress=relay@example.org",
            "-keyout",
            "c.key",
            "-out",
            "c.csr",
        ],
    );
    openssl_in(
        &ca,
        &[
            "x509",
            "-req",
            "-in",
            "c.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext",
            "-out",
            "c.pem",
        ],
    );
    let control = s.base.join("qmail/control");
    std::fs::copy(ca.join("ca.pem"), control.join("clientca.pem")).unwrap();
    std::fs::write(control.join("tlsclients"), "relay@example.org\n").unwrap();
    for f in ["clientca.pem", "tlsclients"] {
        mode(&control.join(f), 0o644);
    }
    let (cert, key) = (ca.join("c.pem"), ca.join("c.key"));
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let msg = ["--from", "scanner@example.org", "--to", "x@elsewhere.test"];

    // Before STARTTLS: refused.
    let t = s.refused(&msg);
    assert!(
        t.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{t}"
    );
    // With the certificate: relayed, without AUTH.
    let mut args = vec!["--tls", "--tls-cert", cert, "--tls-key", key];
    args.extend(msg);
    s.deliver(&args);
    // Without a certificate: why not.
    let mut args = vec!["--tls"];
    args.extend(msg);
    let t = s.refused(&args);
    assert!(
        t.contains("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts; no valid cert for gatewaying: no certificate"),
        "{t}"
    );
    // A user with a password still relays by AUTH.
    let mut args = vec![
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "wonderland",
    ];
    args.extend(msg);
    s.deliver(&args);

    let q = s.queued();
    assert_eq!(q.len(), 2, "{q:?}");
    assert!(
        q[0].0.contains(")\n  (cert relay@example.org); "),
        "{}",
        q[0].0
    );
    assert_eq!(q[0].1, env_of("scanner@example.org", "x@elsewhere.test"));
    s.check_log(&[
        "client certificate: relaying allowed for \"relay@example.org\"",
        "client certificate: no relaying: no certificate",
    ]);
}

/// control-examples/haproxy: the shipped haproxy.cfg in front of two
/// copies of the smtpd-25 service, each with the shipped balancer lines in
/// front of its tcp.smtp. Clients on other loopback addresses get their
/// own rules, seen through the balancer.
#[test]
fn haproxy_in_front_of_two_smtpd_25_nodes() {
    need("haproxy");
    let dir = examples_dir().join("haproxy");
    let balancer_rules = std::fs::read_to_string(dir.join("tcp.smtp")).unwrap();
    // 127.0.0.2 a stranger (no relaying), as in the smtpd-25 test.
    let rules = format!("{balancer_rules}127.0.0.2:allow\n");
    let nodes = [
        Service::start_as("smtpd-25", "lb-node1", &rules),
        Service::start_as("smtpd-25", "lb-node2", &rules),
    ];
    let port = free_port();
    let cfg = std::fs::read_to_string(dir.join("haproxy.cfg"))
        .unwrap()
        .replace("bind :25", &format!("bind 127.0.0.1:{port}"))
        .replace("127.0.0.1:2525", &format!("127.0.0.1:{}", nodes[0].port))
        .replace("127.0.0.1:2526", &format!("127.0.0.1:{}", nodes[1].port));
    let cfg_path = nodes[0].base.join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut haproxy = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(&format!("127.0.0.1:{port}"), "haproxy");
    std::thread::sleep(Duration::from_millis(100));
    let swaks = |args: &[&str]| {
        Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{port}")])
            .args(["--timeout", "20", "--helo", "client.test"])
            .args(args)
            .output()
            .unwrap()
    };
    // Round robin: four deliveries from the stranger reach both nodes,
    // each naming the real client.
    for _ in 0..4 {
        let o = swaks(&[
            "--local-interface",
            "127.0.0.2",
            "--tls",
            "--to",
            "u@example.org",
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = swaks(&["--local-interface", "127.0.0.2", "--to", "x@elsewhere.test"]);
    let t = text(&o);
    assert!(
        t.contains("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts"),
        "{t}"
    );
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    for node in &nodes {
        let q = node.queued();
        assert!(!q.is_empty(), "round robin left a node out");
        for (msg, _) in &q {
            assert!(
                msg.starts_with("Received: from unknown (HELO client.test) (127.0.0.2)\n  by mx.test with ESMTPS"),
                "{msg}"
            );
        }
        node.check_log(&[" end remote=127.0.0.2 ", " via=127.0.0.1 "]);
    }
}
