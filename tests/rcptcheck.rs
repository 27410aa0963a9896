//! RCPTCHECK through real tcpserver: a shell script decides by the
//! recipient and exercises each exit code, the fd-4 reply, the variables,
//! stdin being /dev/null, and the timeout that kills its process group.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server, Setup};

const SCRIPT: &str = r#"#!/bin/sh
D="$FAKEQ_DIR"
env | grep -E '^(SENDER|RECIPIENT|HELO|USE_FD4|RCPTHOSTS|RCPTFOUND)=' | sort > "$D/env.$RECIPIENT"
head -c 100 > "$D/stdin.$RECIPIENT"
echo "rcptcheck stdout line"
case "$RECIPIENT" in
  e100@*) exit 100;;
  e100r@*) printf '550 5.1.1 unknown user here\r\n' >&4; exit 100;;
  e111@*) exit 111;;
  e112@*) exit 112;;
  e113@*) exit 113;;
  e113r@*) echo "452 4.5.3 slow down" >&4; exit 113;;
  e120@*) exit 120;;
  kill@*) kill -9 $$;;
  hang@*) sleep 30 & echo $! > "$D/sleeper"; wait; exit 0;;
  *) echo "250 ignored: only logged" >&4; exit 0;;
esac
"#;

fn server(name: &str, extra: &[(&'static str, &str)]) -> Server {
    let mut s = Setup::new(name)
        .control("rcptcheck.sh", SCRIPT)
        .env("RCPTCHECK", "control/rcptcheck.sh");
    for (k, v) in extra {
        s = s.env(k, v);
    }
    let srv = s.start();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        srv.path("control/rcptcheck.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    srv
}

fn rcpt(c: &mut Client, addr: &str) -> String {
    c.send(format!("RCPT TO:<{addr}>\r\n").as_bytes());
    c.reply()
}

fn begin(srv: &Server) -> Client {
    let mut c = Client::connect(srv);
    c.reply();
    c.send(b"HELO client.test\r\nMAIL FROM:<a@sender.test>\r\n");
    c.reply();
    c.reply();
    c
}

#[test]
fn exit_codes_and_fd4_replies() {
    let srv = server("rcptcheck", &[]);
    let mut c = begin(&srv);
    assert_eq!(rcpt(&mut c, "ok@example.org"), "250 2.1.5 ok\r\n");
    assert_eq!(
        rcpt(&mut c, "e100@example.org"),
        "553 5.1.1 sorry, no mailbox here by that name\r\n"
    );
    assert_eq!(
        rcpt(&mut c, "e100r@example.org"),
        "550 5.1.1 unknown user here\r\n"
    );
    assert_eq!(
        rcpt(&mut c, "e111@example.org"),
        "451 4.3.0 unable to verify recipient\r\n"
    );
    assert_eq!(rcpt(&mut c, "e112@example.org"), "250 2.1.5 ok\r\n");
    assert_eq!(
        rcpt(&mut c, "e120@example.org"),
        "451 4.3.0 unable to execute recipient check\r\n"
    );
    assert_eq!(
        rcpt(&mut c, "kill@example.org"),
        "451 4.3.0 unable to execute recipient check\r\n"
    );
    assert_eq!(rcpt(&mut c, "e113r@example.org"), "452 4.5.3 slow down\r\n");
    // The message goes to the accepted ones only.
    c.send(b"DATA\r\n");
    assert!(c.reply().starts_with("354 "));
    c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250 "));
    assert_eq!(
        srv.queued()[0].1,
        b"Fa@sender.test\0Tok@example.org\0Te112@example.org\0\0"
    );
    // 113 without a reply of its own: 421 and the end.
    c.send(b"MAIL FROM:<a@sender.test>\r\n");
    c.reply();
    assert_eq!(
        rcpt(&mut c, "e113@example.org"),
        "421 4.7.0 you have exceeded your messaging limits\r\n"
    );
    assert!(c.closed());

    let q = srv.path("queue");
    let env = std::fs::read_to_string(q.join("env.ok@example.org")).unwrap();
    assert_eq!(
        env,
        "HELO=client.test\nRCPTHOSTS=1\nRECIPIENT=ok@example.org\nSENDER=a@sender.test\nUSE_FD4=1\n"
    );
    assert_eq!(
        std::fs::read(q.join("stdin.ok@example.org")).unwrap(),
        b"",
        "stdin is /dev/null"
    );
    let log = srv.stderr_log();
    assert!(
        log.contains("rcptcheck stdout line"),
        "stdout goes to the log: {log}"
    );
    assert!(
        log.contains("RCPTCHECK: rcpt=\"e100@example.org\" exit 100"),
        "{log}"
    );
    assert!(log.contains("how=rcptcheck"), "{log}");
}

#[test]
fn timeout_kills_the_process_group_and_gives_4xx() {
    let srv = server("rcptcheck-timeout", &[("RCPTCHECK_TIMEOUT", "1")]);
    let mut c = begin(&srv);
    let t0 = Instant::now();
    assert_eq!(
        rcpt(&mut c, "hang@example.org"),
        "451 4.4.3 recipient check timed out\r\n"
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    let pid = std::fs::read_to_string(srv.path("queue/sleeper")).unwrap();
    let proc = format!("/proc/{}", pid.trim());
    let gone = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&proc).exists() && Instant::now() < gone {
        // A zombie until reaped by init is gone enough: check its state.
        let stat = std::fs::read_to_string(format!("{proc}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stat = std::fs::read_to_string(format!("{proc}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the sleep survived: {stat}"
    );
    // The session goes on.
    assert_eq!(rcpt(&mut c, "ok@example.org"), "250 2.1.5 ok\r\n");
}

#[test]
fn relay_clients_only_with_rcptcheckrelayclient() {
    let srv = server("rcptcheck-relay", &[("RELAYCLIENT", "")]);
    let mut c = begin(&srv);
    assert_eq!(rcpt(&mut c, "e100@elsewhere.test"), "250 2.1.5 ok\r\n");

    let srv = server(
        "rcptcheck-relay-on",
        &[("RELAYCLIENT", ""), ("RCPTCHECKRELAYCLIENT", "1")],
    );
    let mut c = begin(&srv);
    assert!(rcpt(&mut c, "e100@elsewhere.test").starts_with("553 5.1.1 "));
    let env = std::fs::read_to_string(srv.path("queue/env.e100@elsewhere.test")).unwrap();
    assert!(!env.contains("RCPTHOSTS"), "{env}");
}

#[test]
fn pipelined_recipients_are_checked_in_order() {
    let srv = server("rcptcheck-pipelined", &[]);
    let mut c = Client::connect(&srv);
    c.reply();
    // One write, as a PIPELINING client sends it (RFC 2920).
    c.send(
        b"EHLO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<e100@example.org>\r\n\
          RCPT TO:<ok@example.org>\r\nRCPT TO:<e111@example.org>\r\nDATA\r\n",
    );
    assert!(c.reply().starts_with("250-"));
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("553 5.1.1 "));
    assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    assert!(c.reply().starts_with("451 4.3.0 "));
    assert!(c.reply().starts_with("354 "));
    c.send(b"Subject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.0.0 ok"));
    assert_eq!(srv.queued()[0].1, b"Fa@sender.test\0Tok@example.org\0\0");
}

#[test]
fn rcptfound_after_a_validrcptto_accept() {
    let srv = server("rcptcheck-found", &[("VALIDRCPTTO", "control/vrt")]);
    std::fs::write(srv.path("control/vrt"), "ok@example.org\n").unwrap();
    let mut c = begin(&srv);
    assert_eq!(rcpt(&mut c, "ok@example.org"), "250 2.1.5 ok\r\n");
    assert_eq!(rcpt(&mut c, "other@example.org"), "250 2.1.5 ok\r\n");
    let q = srv.path("queue");
    let found = std::fs::read_to_string(q.join("env.ok@example.org")).unwrap();
    assert!(found.contains("RCPTFOUND=1\n"), "{found}");
    let other = std::fs::read_to_string(q.join("env.other@example.org")).unwrap();
    assert!(!other.contains("RCPTFOUND"), "{other}");
}
