//! qmail-spp plugins end to end: real tcpserver, the built qmail-smtpd,
//! plugins written here as small shell scripts, clients speaking SMTP on
//! the wire (raw, and Python smtplib for STARTTLS).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Client, Setup, python};

/// A directory of plugin scripts for one test, removed when dropped.
struct Plugins(PathBuf);

impl Plugins {
    fn new(name: &str) -> Plugins {
        let dir = std::env::temp_dir().join(format!("qsmtpd-spp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Plugins(dir)
    }

    /// A `/bin/sh` plugin with this body; returns its path.
    fn script(&self, name: &str, body: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }
}

impl Drop for Plugins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn greet(c: &mut Client) -> String {
    let g = c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    g
}

fn chat(c: &mut Client, line: &str) -> String {
    c.send(format!("{line}\r\n").as_bytes());
    c.reply()
}

#[test]
fn rcpt_plugin_rejects_with_its_own_text_and_sees_the_envelope() {
    let p = Plugins::new("rcpt");
    let env_log = p.file("env.log");
    let rcpt = p.script(
        "rcpt",
        &format!(
            "echo \"$SMTPHELOHOST|$SMTPMAILFROM|$SMTPRCPTTO|$SMTPRCPTCOUNT|$SMTPRCPTCOUNTALL|$SMTPRCPTHOSTSOK\" >> {}\n\
             case \"$SMTPRCPTTO\" in\n  bad@*) echo 'E550 5.7.1 no thanks';;\n  *) echo;;\nesac",
            env_log.display()
        ),
    );
    let s = Setup::new("spp-rcpt")
        .control("smtpplugins", &format!("[rcpt]\n{rcpt}\n"))
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    assert!(chat(&mut c, "MAIL FROM:<a@sender.test>").starts_with("250"));
    assert_eq!(
        chat(&mut c, "RCPT TO:<bad@example.org>"),
        "550 5.7.1 no thanks\r\n"
    );
    assert!(chat(&mut c, "RCPT TO:<good@example.org>").starts_with("250"));
    assert!(chat(&mut c, "RCPT TO:<x@elsewhere.test>").starts_with("553"));
    assert!(chat(&mut c, "DATA").starts_with("354"));
    c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert_eq!(
        p.read("env.log"),
        "client.test|a@sender.test|bad@example.org|0|1|1\n\
         client.test|a@sender.test|good@example.org|0|2|1\n\
         client.test|a@sender.test|x@elsewhere.test|1|3|0\n"
    );
    let q = s.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, b"Fa@sender.test\0Tgood@example.org\0\0");
}

#[test]
fn omit_at_rcpt_grants_relaying_next_does_not() {
    let p = Plugins::new("omit");
    let rcpt = p.script(
        "rcpt",
        "case \"$SMTPRCPTTO\" in\n  *@partner.test) echo O;;\n  *) echo N;;\nesac",
    );
    let s = Setup::new("spp-omit")
        .control("smtpplugins", &format!("[r]\n{rcpt}\n"))
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    assert!(chat(&mut c, "RCPT TO:<u@partner.test>").starts_with("250"));
    assert!(chat(&mut c, "RCPT TO:<u@other.test>").starts_with("553"));
}

#[test]
fn headers_env_and_address_change_reach_qmail_queue() {
    let p = Plugins::new("hdr");
    let env_out = p.file("queue.env");
    let wrapper = p.script(
        "queue",
        &format!(
            "env | grep -E '^(SPPVAR|SMTPMAILFROM|GONE)=' | sort > {}\nexec {}",
            env_out.display(),
            common::fake_queue().display()
        ),
    );
    let helo = p.script("helo", "echo 'HX-Helo-Check: passed'\necho SGONE=1");
    let mail = p.script(
        "mail",
        "echo SSPPVAR=hello\necho Cchanged@sender.test\necho UGONE",
    );
    let rcpt = p.script(
        "rcpt",
        "echo \"HX-Seen: $SPPVAR $SMTPMAILFROM\"\n[ \"$SMTPRCPTTO\" = alias@example.org ] && echo Creal@example.org\necho N",
    );
    let s = Setup::new("spp-hdr")
        .control(
            "smtpplugins",
            &format!("[helo]\n{helo}\n[mail]\n{mail}\n[rcpt]\n{rcpt}\n"),
        )
        .env("QMAILQUEUE", &wrapper)
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    chat(&mut c, "MAIL FROM:<orig@sender.test>");
    assert!(chat(&mut c, "RCPT TO:<alias@example.org>").starts_with("250"));
    chat(&mut c, "DATA");
    c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    // A second message gets no headers from [helo] (they went with the first).
    chat(&mut c, "MAIL FROM:<b@sender.test>");
    chat(&mut c, "RCPT TO:<u@example.org>");
    chat(&mut c, "DATA");
    c.send(b"Subject: 2\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    let q = s.queued();
    assert_eq!(q.len(), 2);
    let (msg, env) = &q[0];
    assert_eq!(env, b"Fchanged@sender.test\0Treal@example.org\0\0");
    let mut lines = msg.lines();
    assert!(lines.next().unwrap().starts_with("Received: from"));
    let hdrs: Vec<&str> = lines.filter(|l| l.starts_with("X-")).collect();
    assert_eq!(
        hdrs,
        ["X-Helo-Check: passed", "X-Seen: hello changed@sender.test"]
    );
    assert!(
        msg.contains("\nX-Helo-Check: passed\nX-Seen: hello changed@sender.test\nSubject: t\n")
    );
    assert!(!q[1].0.contains("X-Helo-Check"), "{}", q[1].0);
    assert_eq!(
        std::fs::read_to_string(&env_out).unwrap(),
        "SMTPMAILFROM=changed@sender.test\nSPPVAR=hello\n"
    );
}

#[test]
fn queued_errors_print_and_multiline_replies() {
    let p = Plugins::new("later");
    let mail = p.script("mail", "echo 'LR450 4.7.1 come back later'");
    let data = p.script(
        "data",
        "echo 'P554-5.7.1 first line'\necho 'E554 5.7.1 no data'",
    );
    let s = Setup::new("spp-later")
        .control("smtpplugins", &format!("[mail]\n{mail}\n[data]\n{data}\n"))
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    assert!(chat(&mut c, "MAIL FROM:<a@sender.test>").starts_with("250"));
    assert_eq!(
        chat(&mut c, "RCPT TO:<u@example.org>"),
        "450 4.7.1 come back later\r\n"
    );
    assert_eq!(
        chat(&mut c, "RCPT TO:<v@example.org>"),
        "450 4.7.1 come back later\r\n"
    );
    assert!(chat(&mut c, "RSET").starts_with("250"));
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    // The queue was cleared by RSET, but MAIL queued it again.
    assert!(chat(&mut c, "RCPT TO:<u@example.org>").starts_with("450"));
    chat(&mut c, "RSET");
    let s2 = chat(&mut c, "NOOP");
    assert!(s2.starts_with("250"));
    drop(c);
    let p2 = Plugins::new("later2");
    let data2 = p2.script(
        "data",
        "echo 'P554-5.7.1 first line'\necho 'E554 5.7.1 no data'",
    );
    let s = Setup::new("spp-multi")
        .control("smtpplugins", &format!("[data]\n{data2}\n"))
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    chat(&mut c, "RCPT TO:<u@example.org>");
    assert_eq!(
        chat(&mut c, "DATA"),
        "554-5.7.1 first line\r\n554 5.7.1 no data\r\n"
    );
    assert!(chat(&mut c, "NOOP").starts_with("250"));
    assert!(s.queued().is_empty());
    let _ = data;
}

#[test]
fn failures_are_451_and_the_session_goes_on() {
    let p = Plugins::new("fail");
    let crash = p.script("crash", "echo E550 never\nkill -SEGV $$");
    let e120 = p.script("e120", "exit 120");
    let noexec = p.file("noexec");
    std::fs::write(&noexec, "#!/bin/sh\necho E550\n").unwrap();
    let flood = p.script("flood", "yes P250-spam");
    let bg = p.file("bg.pid");
    let slow = p.script(
        "slow",
        &format!(
            "sleep 300 &\necho $! > {}\nsleep 300\necho E550 late",
            bg.display()
        ),
    );
    let quiet = p.script("quiet", "exit 0");
    let check = |plugin: &str, name: &str, want: &str, extra: Option<(&str, &str)>| {
        let mut setup = Setup::new(name).control("smtpplugins", &format!("[mail]\n{plugin}\n"));
        if let Some((k, v)) = extra {
            setup = setup.env(k, v);
        }
        let s = setup.start();
        let mut c = Client::connect(&s);
        greet(&mut c);
        let t = Instant::now();
        let r = chat(&mut c, "MAIL FROM:<a@sender.test>");
        let want = format!("451 qmail-spp failure: {plugin}: {want} (#4.3.0)\r\n");
        assert!(r == want, "{name}: {}", &r[..r.len().min(300)]);
        assert!(chat(&mut c, "NOOP").starts_with("250"), "{name}");
        t.elapsed()
    };
    check(&crash, "spp-crash", "child crashed", None);
    check(&e120, "spp-120", "can't execute", None);
    check(
        noexec.to_str().unwrap(),
        "spp-noexec",
        "can't execute",
        None,
    );
    check("/nonexistent/plugin", "spp-missing", "can't execute", None);
    check(&flood, "spp-flood", "too much output", None);
    let took = check(&slow, "spp-slow", "timed out", Some(("SPP_TIMEOUT", "1")));
    assert!(
        took < Duration::from_secs(20),
        "the timeout did not end the plugin: {took:?}"
    );
    // What the plugin started went with it (its process group was killed).
    let pid = std::fs::read_to_string(&bg).unwrap().trim().to_string();
    let gone = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its new parent to reap it.
        if stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            break;
        }
        assert!(
            Instant::now() < gone,
            "the plugin's background child survived: {stat}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Exit codes other than 120 mean nothing.
    let s = Setup::new("spp-quiet")
        .control(
            "smtpplugins",
            &format!("[mail]\n{quiet}\n:exit 100\n:nosuchcommand\n"),
        )
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    assert!(chat(&mut c, "MAIL FROM:<a@sender.test>").starts_with("250"));
}

#[test]
fn connection_hook_replaces_greeting_or_ends_session() {
    let p = Plugins::new("conn");
    let s = Setup::new("spp-conn-e")
        .control("smtpplugins", ":echo 'E554 go away (#5.7.1)'\n")
        .start();
    let mut c = Client::connect(&s);
    assert!(
        c.reply().starts_with("220 mx.test"),
        "plugin before a section is never run"
    );
    drop(c);
    drop(s);
    let s = Setup::new("spp-conn-e2")
        .control(
            "smtpplugins",
            "[connection]\n:echo 'E554 go away (#5.7.1)'\n",
        )
        .start();
    let mut c = Client::connect(&s);
    assert_eq!(c.reply(), "554 go away (#5.7.1)\r\n");
    // The session goes on (commands are answered, as spp does).
    assert!(chat(&mut c, "NOOP").starts_with("250"));
    drop(c);
    drop(s);
    let s = Setup::new("spp-conn-r")
        .control("smtpplugins", "[c]\n:echo 'R421 bye'\n")
        .start();
    let mut c = Client::connect(&s);
    assert_eq!(c.reply(), "421 bye\r\n");
    assert!(c.closed());
    drop(c);
    drop(s);
    let s = Setup::new("spp-conn-d")
        .control("smtpplugins", "[c]\n:echo D\n")
        .start();
    let mut c = Client::connect(&s);
    assert_eq!(c.line(), None);
    assert!(s.stderr_log().contains("how=spp"), "{}", s.stderr_log());
    let _ = p;
}

#[test]
fn accept_ends_all_later_plugins() {
    let p = Plugins::new("accept");
    let s = Setup::new("spp-accept")
        .control(
            "smtpplugins",
            "[helo]\n:echo A\n:echo E550 not reached\n[rcpt]\n:echo E550 never\n",
        )
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    assert!(chat(&mut c, "RCPT TO:<u@example.org>").starts_with("250"));
    // A does not grant relaying: our own checks still run.
    assert!(chat(&mut c, "RCPT TO:<u@elsewhere.test>").starts_with("553"));
    let _ = p;
}

#[test]
fn switches_nospp_sppconffile_and_unreadable_file() {
    let s = Setup::new("spp-nospp")
        .control("smtpplugins", "[mail]\n:echo E550 no\n")
        .env("NOSPP", "")
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    assert!(chat(&mut c, "MAIL FROM:<a@sender.test>").starts_with("250"));
    drop(c);
    drop(s);
    let s = Setup::new("spp-conffile")
        .control("other-plugins", "[mail]\n:echo E550 from the other file\n")
        .env("SPPCONFFILE", "control/other-plugins")
        .env("ENABLE_SPP", "0")
        .start();
    let mut c = Client::connect(&s);
    greet(&mut c);
    assert_eq!(
        chat(&mut c, "MAIL FROM:<a@sender.test>"),
        "550 from the other file\r\n"
    );
    drop(c);
    drop(s);
    // Relative plugin paths are below the qmail home.
    let s = Setup::new("spp-relative")
        .control("smtpplugins", "[mail]\nplugins/reject\n")
        .start();
    std::fs::create_dir_all(s.dir.join("plugins")).unwrap();
    let p = s.dir.join("plugins/reject");
    std::fs::write(&p, "#!/bin/sh\necho \"E550 from $(pwd)\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Client::connect(&s);
    greet(&mut c);
    assert_eq!(
        chat(&mut c, "MAIL FROM:<a@sender.test>"),
        format!("550 from {}\r\n", s.dir.display())
    );
    drop(c);
    drop(s);
    let s = Setup::new("spp-unreadable").start();
    std::fs::create_dir(s.dir.join("control/smtpplugins")).unwrap();
    let mut c = Client::connect(&s);
    assert!(c.reply().starts_with("421"), "unreadable smtpplugins");
}

#[test]
fn hooks_run_inside_starttls_and_auth() {
    let p = Plugins::new("tls");
    let log = p.file("helo.log");
    let helo = p.script(
        "helo",
        &format!(
            "echo \"$SMTPHELOHOST ${{TLS_PROTOCOL:-clear}}\" >> {}",
            log.display()
        ),
    );
    let auth = p.script(
        "auth",
        "[ \"$SMTPAUTHUSER\" = bob ] && echo 'E535 5.7.8 bob may not log in here'\necho",
    );
    let rcpt = p.script(
        "rcpt",
        "[ \"$SMTPRCPTTO\" = grey@example.org ] && echo 'E450 4.7.1 greylisted'\necho",
    );
    let s = Setup::new("spp-tls")
        .cert()
        .auth()
        .control(
            "smtpplugins",
            &format!("[helo]\n{helo}\n[rcpt]\n{rcpt}\n[auth]\n{auth}\n"),
        )
        .start();
    let out = python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="before.test")
s.ehlo(); s.starttls(context=ctx); s.ehlo("after.test")
try:
    s.login("bob", "secret")
except smtplib.SMTPAuthenticationError as e:
    print("bob", e.smtp_code, e.smtp_error.decode())
s.login("alice", "wonderland")
s.mail("a@sender.test")
print("grey", s.rcpt("grey@example.org"))
print("ok", s.rcpt("u@example.org")[0])
s.quit()
"#,
        port = s.port
    ));
    assert!(
        out.contains("bob 535 5.7.8 bob may not log in here"),
        "{out}"
    );
    assert!(out.contains("grey (450, b'4.7.1 greylisted')"), "{out}");
    assert!(out.contains("ok 250"), "{out}");
    let helos = p.read("helo.log");
    let lines: Vec<&str> = helos.lines().collect();
    assert!(lines.contains(&"before.test clear"), "{helos}");
    assert!(
        lines.iter().any(|l| l.starts_with("after.test TLSv1.")),
        "[helo] runs again inside TLS and sees the TLS variables: {helos}"
    );
}

/// `--explain` and `--check` on a qmail home with plugins (not a server).
#[test]
fn explain_lists_plugins_and_check_judges_them() {
    use std::os::unix::fs::PermissionsExt;
    let p = Plugins::new("explain");
    let home = p.0.join("home");
    std::fs::create_dir_all(home.join("control")).unwrap();
    std::fs::create_dir_all(home.join("plugins")).unwrap();
    std::fs::write(home.join("control/me"), "mx.test\n").unwrap();
    std::fs::write(home.join("control/rcpthosts"), "example.org\n").unwrap();
    let ok = home.join("plugins/ok");
    std::fs::write(&ok, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&ok, std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = home.join("plugins/private");
    std::fs::write(&private, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        home.join("control/smtpplugins"),
        "[connection]\nplugins/ok\n[rcpt]\nplugins/ok\n:echo N\n[mail]\nplugins/missing\n[auth]\nplugins/private\n",
    )
    .unwrap();
    for dir in [&p.0, &home, &home.join("control"), &home.join("plugins")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut c = std::process::Command::new(common::bin());
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QMAILHOME", &home);
        for (k, v) in extra {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        common::text(&o)
    };
    let out = run(&["--explain"], &[("SPP_TIMEOUT", "5")]);
    assert!(
        out.contains("qmail-spp plugins: [connection] plugins/ok; [mail] plugins/missing; [rcpt] plugins/ok, :echo N; [auth] plugins/private; each run at most 5s"),
        "{out}"
    );
    assert!(out.contains("policy service: none"), "{out}");
    let out = run(
        &["--explain"],
        &[("NOSPP", ""), ("POLICY_SERVICE", "inet:127.0.0.1:10023")],
    );
    assert!(
        out.contains("qmail-spp plugins: off (NOSPP is set)"),
        "{out}"
    );
    assert!(
        out.contains("policy service: inet:127.0.0.1:10023 asked about every recipient"),
        "{out}"
    );
    let user = if nix::unistd::geteuid().is_root() {
        "nobody".to_string()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name
    };
    let port = common::free_port();
    let out = run(
        &["--check", "--user", &user],
        &[("POLICY_SERVICE", &format!("inet:127.0.0.1:{port}"))],
    );
    assert!(
        out.contains("ok: [connection] plugin plugins/ok is executable"),
        "{out}"
    );
    assert!(
        out.contains("ok: [rcpt] plugin :echo N is executable"),
        "{out}"
    );
    assert!(
        out.contains("error: [mail] plugin plugins/missing:"),
        "{out}"
    );
    if nix::unistd::geteuid().is_root() {
        assert!(
            out.contains("error: [auth] plugin plugins/private:"),
            "{out}"
        );
    }
    assert!(
        out.contains(&format!("error: policy service inet:127.0.0.1:{port}:")),
        "{out}"
    );
}

/// control-examples/smtpplugins and its plugin, installed as its comment
/// says.
#[test]
fn shipped_smtpplugins_example_works() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("control-examples");
    let conf = std::fs::read_to_string(examples.join("smtpplugins")).unwrap();
    let s = Setup::new("spp-example")
        .control("smtpplugins", &conf)
        .rules("127.0.0.2:allow\n:allow,RELAYCLIENT=\"\"\n")
        .start();
    std::fs::create_dir_all(s.dir.join("plugins")).unwrap();
    std::fs::copy(
        examples.join("plugins/helo-dot"),
        s.dir.join("plugins/helo-dot"),
    )
    .unwrap();
    // From 127.0.0.2: no RELAYCLIENT there.
    let mut c = Client::from(socket_from("127.0.0.2", s.port));
    c.reply();
    assert_eq!(
        chat(&mut c, "EHLO localhost"),
        "550 5.7.1 HELO/EHLO needs a fully qualified host name\r\n"
    );
    assert!(chat(&mut c, "HELO client.test").starts_with("250"));
    chat(&mut c, "MAIL FROM:<a@sender.test>");
    chat(&mut c, "RCPT TO:<u@example.org>");
    chat(&mut c, "DATA");
    c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    drop(c);
    // A client with RELAYCLIENT may say what it likes.
    let mut c = Client::connect(&s);
    c.reply();
    assert!(chat(&mut c, "HELO localhost").starts_with("250"));
    let q = s.queued();
    assert_eq!(q.len(), 1);
    assert!(
        q[0].0.contains("\nX-Spp-Rcpt-Count: 1\nSubject: t\n"),
        "{}",
        q[0].0
    );
}

fn socket_from(local: &str, port: u16) -> std::net::TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let ip: std::net::Ipv4Addr = local.parse().unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(ip, 0)),
    )
    .unwrap();
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new([127, 0, 0, 1].into(), port)),
    )
    .unwrap();
    std::net::TcpStream::from(fd)
}

/// Under SMTPS the [connection] plugins run after the handshake, and their
/// text is sent inside TLS.
#[test]
fn connection_hook_under_smtps_speaks_inside_tls() {
    let p = Plugins::new("smtps");
    let conn = p.script("conn", "echo \"E554 5.7.1 not you ($TLS_PROTOCOL)\"");
    let s = Setup::new("spp-smtps")
        .cert()
        .env("SMTPS", "1")
        .control("smtpplugins", &format!("[connection]\n{conn}\n"))
        .start();
    let out = python(&format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})))
f = s.makefile("rb")
print(f.readline().decode().strip())
s.sendall(b"NOOP\r\n")
print(f.readline().decode().strip())
"#,
        port = s.port
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "554 5.7.1 not you (TLSv1.3)", "{out}");
    assert!(lines[1].starts_with("250"), "{out}");
}
