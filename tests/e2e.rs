//! End to end through the real parts: `tcpserver` (ucspi-tcp) running the
//! built `qmail-smtpd`, real `tcprules` CDBs, real `swaks`, Python's
//! `smtplib`, raw sockets for the dialogues no client library will produce,
//! and `fake-qmail-queue` (examples/) speaking qmail-queue's protocol.
//!
//! Needs tcpserver, tcprules, swaks and python3 on PATH: `tests/run-all`
//! installs them. A missing tool fails the test; nothing is skipped.

mod common;

use std::net::Shutdown;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, Setup, need, text};

#[test]
fn swaks_delivers_with_qmail_received_header() {
    let srv = Setup::new("basic").start();
    let o = srv.swaks(&[
        "--from",
        "alice@sender.test",
        "--to",
        "bob@example.org,carol@x.wild.example",
        "--header",
        "Subject: e2e",
        "--body",
        ".leading dot\nsecond line",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("<-  250-PIPELINING"), "{t}");
    assert!(t.contains("<-  250-ENHANCEDSTATUSCODES"), "{t}");
    assert!(t.contains("<-  250 SIZE 0"), "{t}");
    assert!(t.contains("<-  250 2.0.0 ok "), "{t}");
    let q = srv.queued();
    assert_eq!(q.len(), 1, "{t}");
    let (msg, env) = &q[0];
    assert!(
        msg.starts_with(
            "Received: from unknown (HELO client.test) (127.0.0.1)\n  by mx.test with ESMTP; "
        ),
        "{msg}"
    );
    assert!(msg.contains("Subject: e2e\n"), "{msg}");
    assert!(msg.contains("\n.leading dot\nsecond line\n"), "{msg}");
    assert!(!msg.contains('\r'));
    assert_eq!(
        env.as_slice(),
        b"Falice@sender.test\0Tbob@example.org\0Tcarol@x.wild.example\0\0"
    );
}

#[test]
fn tcprules_cdb_sets_relayclient_per_ip() {
    let srv = Setup::new("rules")
        .rules("127.0.0.1:allow,RELAYCLIENT=\"\"\n127.0.0.3:deny\n:allow\n")
        .start();
    let relay = ["--from", "a@sender.test", "--to", "x@elsewhere.test"];
    let o = srv.swaks(&relay);
    assert!(o.status.success(), "{}", text(&o));

    let mut args = relay.to_vec();
    args.extend(["--local-interface", "127.0.0.2"]);
    let o = srv.swaks(&args);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(
        t.contains("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts"),
        "{t}"
    );
    // Local domains are still accepted from 127.0.0.2.
    let o = srv.swaks(&["--to", "u@example.org", "--local-interface", "127.0.0.2"]);
    assert!(o.status.success(), "{}", text(&o));
    // 127.0.0.3 is refused by tcpserver itself.
    let o = srv.swaks(&["--to", "u@example.org", "--local-interface", "127.0.0.3"]);
    assert!(!o.status.success());
    let q = srv.queued();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].1, b"Fa@sender.test\0Tx@elsewhere.test\0\0");
}

#[test]
fn python_smtplib_second_client() {
    need("python3");
    let srv = Setup::new("python").start();
    let script = format!(
        r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="py.test", timeout=20)
code, msg = s.ehlo()
assert code == 250 and b"PIPELINING" in msg and b"8BITMIME" in msg, msg
refused = s.sendmail("py@sender.test", ["a@example.org", "b@nowhere.test"],
                     b"Subject: py\r\n\r\nhello from python\r\n")
assert list(refused) == ["b@nowhere.test"] and refused["b@nowhere.test"][0] == 553, refused
code, msg = s.verify("root")
assert code == 252, (code, msg)
code, msg = s.docmd("FOO")
assert code == 502, (code, msg)
s.quit()
print("python ok")
"#,
        port = srv.port
    );
    let o = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert!(q[0].0.contains("(HELO py.test)"));
    assert!(q[0].0.ends_with("\nhello from python\n"));
    assert_eq!(q[0].1, b"Fpy@sender.test\0Ta@example.org\0\0");
}

#[test]
fn every_qmail_queue_exit_code_reaches_the_client() {
    // One server; the exit code is chosen per client address by tcprules.
    let codes: &[(i32, &str)] = &[
        (11, "554 5.1.3 envelope address too long for qq"),
        (115, "554 5.1.3 envelope address too long for qq"),
        (31, "554 5.3.0 mail server permanently rejected message"),
        (51, "451 4.3.0 qq out of memory"),
        (53, "451 4.3.0 qq write error or disk full"),
        (71, "451 4.3.0 mail server temporarily rejected message"),
        (74, "451 4.4.2 communication with mail server failed"),
        (81, "451 4.3.0 qq internal bug"),
        (99, "451 4.3.0 qq temporary problem"),
    ];
    let mut rules = String::new();
    for (i, (code, _)) in codes.iter().enumerate() {
        rules.push_str(&format!("127.0.1.{}:allow,FAKEQ_EXIT=\"{code}\"\n", i + 1));
    }
    rules.push_str(
        "127.0.2.1:allow,FAKEQ_MODE=\"signal\"\n127.0.2.2:allow,FAKEQ_MODE=\"early\"\n:allow\n",
    );
    let srv = Setup::new("exits").rules(&rules).start();
    let mut cases: Vec<(String, &str)> = codes
        .iter()
        .enumerate()
        .map(|(i, (_, want))| (format!("127.0.1.{}", i + 1), *want))
        .collect();
    cases.push(("127.0.2.1".into(), "451 4.3.0 qq crashed"));
    cases.push((
        "127.0.2.2".into(),
        "451 4.3.0 mail server temporarily rejected message",
    ));
    for (ip, want) in cases {
        let o = srv.swaks(&["--to", "u@example.org", "--local-interface", &ip]);
        let t = text(&o);
        assert!(!o.status.success(), "{ip}: {t}");
        assert!(t.contains(&format!("<** {want}")), "{ip}: want {want}: {t}");
        assert!(!t.contains("250 2.0.0 ok "), "{ip}: {t}");
    }
    assert!(srv.queued().is_empty());
}

#[test]
fn queue_program_missing_gives_451() {
    let srv = Setup::new("noqq")
        .env("QMAILQUEUE", "/nonexistent/qmail-queue")
        .start();
    let o = srv.swaks(&["--to", "u@example.org"]);
    let t = text(&o);
    assert!(t.contains("<** 451 4.3.0 unable to exec qq"), "{t}");
    assert!(
        srv.stderr_log()
            .contains("unable to run /nonexistent/qmail-queue")
    );
}

fn start_data(c: &mut Client) {
    assert!(c.reply().starts_with("220 mx.test ESMTP"));
    c.send(b"EHLO raw.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250-mx.test"));
    assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
    assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
    assert!(c.reply().starts_with("354 "));
}

#[test]
fn bare_lf_gets_451_and_close_and_nothing_is_queued() {
    let srv = Setup::new("barelf").start();
    for data in [&b"hello\n.\nRSET\r\n"[..], b"hello\r\n.\r\rQUIT\r\n"] {
        let mut c = Client::connect(&srv);
        start_data(&mut c);
        c.send(data);
        let r = c.reply();
        assert!(r.starts_with("451 4.5.0 "), "{r}");
        assert!(c.closed());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(srv.queued().is_empty());
}

#[test]
fn disconnect_mid_data_queues_nothing() {
    let srv = Setup::new("hangup").start();
    let mut c = Client::connect(&srv);
    start_data(&mut c);
    c.send(b"Subject: half\r\n\r\nhalf a message\r\n");
    c.s.shutdown(Shutdown::Both).unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(500));
    assert!(srv.queued().is_empty());
}

#[test]
fn databytes_enforced_with_552_and_nothing_queued() {
    let srv = Setup::new("databytes")
        .control("databytes", "1000\n")
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO raw.test\r\n");
    assert!(c.reply().contains("250 SIZE 1000\r\n"));
    c.send(b"MAIL FROM:<a@b.test> SIZE=1001\r\n");
    assert!(c.reply().starts_with("552 5.3.4 "));
    c.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n");
    c.reply();
    c.reply();
    assert!(c.reply().starts_with("354"));
    c.send(&b"0123456789012345678901234567890123456789\r\n".repeat(100));
    c.send(b".\r\nNOOP\r\n");
    assert!(c.reply().starts_with("552 5.3.4 "));
    assert_eq!(c.reply(), "250 2.0.0 ok\r\n");
    std::thread::sleep(Duration::from_millis(200));
    assert!(srv.queued().is_empty());
}

#[test]
fn pipelined_messages_all_answered_in_order() {
    let srv = Setup::new("pipeline").start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"EHLO raw.test\r\n");
    c.reply();
    let n = 200;
    for i in 0..n {
        c.send(
            format!("MAIL FROM:<s{i}@b.test>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n").as_bytes(),
        );
        assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
        assert_eq!(c.reply(), "250 2.1.5 ok\r\n");
        assert!(c.reply().starts_with("354"));
        c.send(format!("message {i}\r\n.\r\n").as_bytes());
        assert!(c.reply().starts_with("250 2.0.0 ok "));
    }
    // And a whole batch in one write, RFC 2920 style, with QUIT at the end.
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend_from_slice(
            format!("RSET\r\nNOOP\r\nMAIL FROM:<x{i}@b.test>\r\nRCPT TO:<u@nowhere.test>\r\n")
                .as_bytes(),
        );
    }
    batch.extend_from_slice(b"QUIT\r\n");
    c.send(&batch);
    for _ in 0..50 {
        assert_eq!(c.reply(), "250 2.0.0 flushed\r\n");
        assert_eq!(c.reply(), "250 2.0.0 ok\r\n");
        assert_eq!(c.reply(), "250 2.1.0 ok\r\n");
        assert!(c.reply().starts_with("553 "));
    }
    assert_eq!(c.reply(), "221 2.0.0 mx.test\r\n");
    assert!(c.closed());
    assert_eq!(srv.queued().len(), n);
}

#[test]
fn idle_client_times_out_with_421() {
    let srv = Setup::new("timeout").control("timeoutsmtpd", "1\n").start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    let t = Instant::now();
    assert_eq!(c.reply(), "421 4.4.2 timeout, closing connection\r\n");
    assert!(c.closed());
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn unreadable_control_file_gives_421() {
    let srv = Setup::new("badcontrol").start();
    std::fs::create_dir(srv.dir.join("control/badmailfrom")).unwrap();
    let mut c = Client::connect(&srv);
    assert_eq!(c.reply(), "421 4.3.0 unable to read controls\r\n");
    assert!(c.closed());
    assert!(srv.stderr_log().contains("badmailfrom"));
}

#[test]
fn missing_rcpthosts_fails_closed() {
    let srv = Setup::new("norcpthosts").start();
    std::fs::remove_file(srv.dir.join("control/rcpthosts")).unwrap();
    let o = srv.swaks(&["--to", "u@example.org"]);
    let t = text(&o);
    assert!(t.contains("<** 451 4.3.5 "), "{t}");
    assert!(srv.stderr_log().contains("rcpthosts is missing"));
}

#[test]
fn error_limit_and_no_reflection_over_tcp() {
    let srv = Setup::new("errors").start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    c.send(b"GET /secret-path HTTP/1.1\r\nHost: secret-host\r\n\r\n");
    let mut all = String::new();
    for _ in 0..3 {
        all.push_str(&c.reply());
    }
    assert!(!all.contains("secret"), "{all}");
    c.send(&b"BOGUS\r\n".repeat(50));
    let mut errors = 3;
    loop {
        let r = c.reply();
        if r.starts_with("421") {
            assert_eq!(r, "421 4.7.0 too many errors, closing connection\r\n");
            break;
        }
        assert!(r.starts_with("502"), "{r}");
        errors += 1;
    }
    assert_eq!(errors, 20);
    assert!(c.closed());
}

#[test]
fn oversized_line_is_refused_without_buffering() {
    let srv = Setup::new("longline").start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220"));
    let mut big = vec![b'x'; 4 * 1024 * 1024];
    big.extend_from_slice(b"\r\nNOOP\r\n");
    c.send(&big);
    assert_eq!(c.reply(), "500 5.5.2 line too long\r\n");
    assert_eq!(c.reply(), "250 2.0.0 ok\r\n");
}
