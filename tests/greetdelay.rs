//! Greeting delay through real tcpserver: jms1's GREETDELAY and
//! DROP_PRE_GREET, sagredo's SMTPD_GREETDELAY, under SMTPS inside TLS.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Setup, python, text};

#[test]
fn early_talker_is_dropped_with_554() {
    let srv = Setup::new("gd-drop")
        .env("GREETDELAY", "3")
        .env("DROP_PRE_GREET", "1")
        .start();
    let mut c = Client::connect(&srv);
    c.send(b"EHLO spambot.test\r\n");
    assert_eq!(c.reply(), "554 5.5.0 SMTP protocol violation\r\n");
    assert!(c.closed());
    let lines = srv.wait_end_lines(2, Duration::from_secs(10)).unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rejected=554x1") && l.ends_with("how=early_talker")),
        "{lines:?}"
    );
    assert!(
        srv.stderr_log()
            .contains("before the greeting: dropped (DROP_PRE_GREET)")
    );
}

#[test]
fn patient_client_is_greeted_after_the_delay_and_delivers() {
    let srv = Setup::new("gd-wait").env("SMTPD_GREETDELAY", "1").start();
    let t0 = Instant::now();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220 "));
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "greeted too early"
    );
    c.send(b"QUIT\r\n");
    c.reply();
    let o = srv.swaks(&["--from", "a@sender.test", "--to", "b@example.org"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.queued().len(), 1);
}

#[test]
fn without_drop_early_bytes_are_thrown_away() {
    let srv = Setup::new("gd-discard").env("GREETDELAY", "1").start();
    let mut c = Client::connect(&srv);
    c.send(b"MAIL FROM:<early@sender.test>\r\n");
    assert!(c.reply().starts_with("220 "));
    // The early MAIL was never run: RCPT has no MAIL.
    c.send(b"RCPT TO:<b@example.org>\r\n");
    assert_eq!(c.reply(), "503 5.5.1 MAIL first\r\n");
    assert!(
        srv.stderr_log()
            .contains("greeting delay: discarded 31 bytes")
    );
}

#[test]
fn relay_clients_skip_the_sagredo_delay_not_jms1s() {
    let srv = Setup::new("gd-relay")
        .env("SMTPD_GREETDELAY", "5")
        .env("RELAYCLIENT", "")
        .start();
    let mut c = Client::connect(&srv);
    c.send(b"HELO client.test\r\n");
    assert!(c.reply().starts_with("220 "));
    assert!(c.reply().starts_with("250 "));

    let srv = Setup::new("gd-relay-jms1")
        .env("GREETDELAY", "3")
        .env("DROP_PRE_GREET", "1")
        .env("RELAYCLIENT", "")
        .start();
    let mut c = Client::connect(&srv);
    c.send(b"HELO client.test\r\n");
    assert!(c.reply().starts_with("554 "));
}

#[test]
fn smtps_early_talker_gets_the_554_inside_tls() {
    let srv = Setup::new("gd-smtps")
        .cert()
        .env("SMTPS", "1")
        .env("GREETDELAY", "3")
        .env("DROP_PRE_GREET", "1")
        .start();
    let out = python(&format!(
        r#"
import socket, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})))
s.sendall(b"EHLO spambot.test\r\n")
data = b""
while True:
    try:
        d = s.recv(4096)
    except (ssl.SSLError, ConnectionError):
        break
    if not d:
        break
    data += d
print(data.decode())
"#,
        port = srv.port
    ));
    assert_eq!(out, "554 5.5.0 SMTP protocol violation\r\n\n");
}
