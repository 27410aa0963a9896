//! The combined patches' recipient checks through real `tcpserver`:
//! jms1's `VALIDRCPTTO_CDB` and sagredo's `control/validrcptto` +
//! `morevalidrcptto.cdb` (cdb files written by the tests in the format of
//! qmail's cdbmake), with swaks, Python smtplib and a raw client.

mod common;

use common::{Client, Setup, python, text, write_cdb};

fn rcpt(c: &mut Client, addr: &str) -> String {
    c.send(format!("RCPT TO:<{addr}>\r\n").as_bytes());
    c.reply()
}

fn session(srv: &common::Server) -> Client {
    let mut c = Client::connect(srv);
    assert!(c.reply().starts_with("220 "));
    c.send(b"HELO client.test\r\nMAIL FROM:<a@sender.test>\r\n");
    c.reply();
    assert!(c.reply().starts_with("250 "));
    c
}

#[test]
fn jms1_validrcptto_cdb_order_values_and_limit() {
    let srv = Setup::new("vrt-jms1")
        .env("VALIDRCPTTO_CDB", "control/validrcptto.cdb")
        .env("VALIDRCPTTO_LIMIT", "3")
        .env("VALIDRCPTTO_LOG", "1")
        .start();
    write_cdb(
        &srv.path("control/validrcptto.cdb"),
        &[
            ("bob@example.org", ""),
            ("list-default@example.org", "1"),
            ("@x.wild.example", ""),
            ("gone@x.wild.example", "-"),
        ],
    );
    let mut c = session(&srv);
    assert!(
        rcpt(&mut c, "Bob@Example.ORG").starts_with("250 "),
        "lower-cased"
    );
    assert!(rcpt(&mut c, "list-sub-x@example.org").starts_with("250 "));
    assert!(rcpt(&mut c, "anyone@x.wild.example").starts_with("250 "));
    let r = rcpt(&mut c, "gone@x.wild.example");
    assert_eq!(
        r,
        "553 5.1.1 sorry, this recipient is not in my validrcptto list\r\n"
    );
    assert!(rcpt(&mut c, "nobody@example.org").starts_with("553 5.1.1 "));
    // Relay refusals are not counted: only validrcptto refusals.
    assert!(rcpt(&mut c, "x@elsewhere.test").starts_with("553 5.7.1 "));
    let r = rcpt(&mut c, "nobody2@example.org");
    assert_eq!(r, "421 4.7.0 too many invalid addresses, goodbye\r\n");
    assert!(c.closed());
    let log = srv.stderr_log();
    assert!(
        log.contains("validrcptto: \"gone@x.wild.example\" reject"),
        "{log}"
    );
    assert!(log.contains("how=too_many_invalid_rcpts"), "{log}");
}

#[test]
fn jms1_cdb_does_not_apply_to_relay_clients_and_unreadable_is_421() {
    let srv = Setup::new("vrt-relay")
        .env("VALIDRCPTTO_CDB", "control/validrcptto.cdb")
        .env("RELAYCLIENT", "")
        .start();
    write_cdb(
        &srv.path("control/validrcptto.cdb"),
        &[("bob@example.org", "")],
    );
    let o = srv.swaks(&["--from", "a@sender.test", "--to", "nobody@example.org"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.queued().len(), 1);

    let srv = Setup::new("vrt-missing")
        .env("VALIDRCPTTO_CDB", "control/nonexistent.cdb")
        .start();
    let mut c = Client::connect(&srv);
    assert_eq!(c.reply(), "421 4.3.0 unable to read controls\r\n");
}

#[test]
fn jms1_validrcptto_with_swaks_delivers_only_to_valid() {
    let srv = Setup::new("vrt-swaks")
        .env("VALIDRCPTTO_CDB", "control/v.cdb")
        .start();
    write_cdb(&srv.path("control/v.cdb"), &[("bob@example.org", "")]);
    let o = srv.swaks(&["--from", "a@sender.test", "--to", "eve@example.org"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("553 5.1.1 sorry, this recipient is not in my validrcptto list"),
        "{t}"
    );
    let o = srv.swaks(&["--from", "a@sender.test", "--to", "bob@example.org"]);
    assert!(o.status.success(), "{}", text(&o));
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, b"Fa@sender.test\0Tbob@example.org\0\0");
}

#[test]
fn sagredo_validrcptto_and_morevalidrcptto_cdb() {
    let srv = Setup::new("vrt-sagredo")
        .control(
            "validrcptto",
            "# accept bob, refuse carol, refuse the whole wild domain but dave\nbob@example.org\n-carol@example.org\n-@x.wild.example\ndave@x.wild.example\n",
        )
        .start();
    write_cdb(
        &srv.path("control/morevalidrcptto.cdb"),
        &[
            ("-eve@example.org", ""),
            ("frank@x.wild.example", "ignored value"),
        ],
    );
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("client.test")
s.mail("a@sender.test")
for r in ["BOB@example.org", "carol@example.org", "zed@example.org", "eve@example.org",
          "dave@x.wild.example", "frank@x.wild.example", "gina@x.wild.example"]:
    print(r, s.rcpt(r)[0])
s.quit()
"#,
        port = srv.port
    );
    let out = python(&script);
    assert_eq!(
        out,
        "BOB@example.org 250\ncarol@example.org 553\nzed@example.org 250\neve@example.org 553\ndave@x.wild.example 250\nfrank@x.wild.example 250\ngina@x.wild.example 553\n",
        "not listed falls through (accepted); - entries refuse"
    );
}

#[test]
fn sagredo_list_named_by_env_and_not_for_authenticated_clients() {
    let srv = Setup::new("vrt-auth")
        .auth()
        .env("ALLOW_INSECURE_AUTH", "1")
        .env("VALIDRCPTTO", "control/mylist")
        .control("mylist", "-@example.org\n")
        .start();
    let mut c = session(&srv);
    assert!(rcpt(&mut c, "x@example.org").starts_with("553 5.1.1 "));
    c.send(b"QUIT\r\n");
    let o = srv.swaks(&[
        "--from",
        "alice@sender.test",
        "--to",
        "x@example.org",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "wonderland",
    ]);
    assert!(o.status.success(), "{}", text(&o));
}
