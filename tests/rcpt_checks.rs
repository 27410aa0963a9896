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

/// One dialogue with smtplib: HELO name, sender, recipients; prints the
/// RCPT codes, then the DATA outcome.
fn smtplib(srv: &common::Server, helo: &str, sender: &str, rcpts: &[&str]) -> String {
    let list: Vec<String> = rcpts.iter().map(|r| format!("{r:?}")).collect();
    python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo({helo:?})
s.mail({sender:?})
ok = 0
for r in [{list}]:
    try:
        code = s.rcpt(r)[0]
    except smtplib.SMTPServerDisconnected:
        print(r, "disconnected")
        break
    print(r, code)
    ok += code == 250
if ok:
    print("data", s.data(b"Subject: t\r\n\r\nhi\r\n")[0])
"#,
        port = srv.port,
        list = list.join(", ")
    ))
}

#[test]
fn maxrcpt_refuses_and_never_adds_the_extra_recipient() {
    let srv = Setup::new("maxrcpt-env")
        .env("MAXRCPT", "2")
        .control("maxrcpt", "50\n")
        .start();
    let out = smtplib(
        &srv,
        "client.test",
        "a@sender.test",
        &["a@example.org", "b@example.org", "c@example.org"],
    );
    assert_eq!(
        out,
        "a@example.org 250\nb@example.org 250\nc@example.org 452\ndata 250\n"
    );
    assert_eq!(
        srv.queued()[0].1,
        b"Fa@sender.test\0Ta@example.org\0Tb@example.org\0\0"
    );

    let srv = Setup::new("maxrcpt-file").control("maxrcpt", "1\n").start();
    let out = smtplib(
        &srv,
        "client.test",
        "a@sender.test",
        &["a@example.org", "b@example.org"],
    );
    assert_eq!(out, "a@example.org 250\nb@example.org 452\ndata 250\n");

    let srv = Setup::new("maxrcpt-disabled")
        .control("maxrcpt", "1\n")
        .env("DISABLE_MAXRCPT", "")
        .start();
    let out = smtplib(
        &srv,
        "client.test",
        "a@sender.test",
        &["a@example.org", "b@example.org"],
    );
    assert_eq!(out, "a@example.org 250\nb@example.org 250\ndata 250\n");
}

#[test]
fn brtlimit_counts_refused_recipients_then_421() {
    for (name, setup) in [
        ("brt-env", Setup::new("brt-env").env("BRTLIMIT", "2")),
        (
            "brt-file",
            Setup::new("brt-file").control("brtlimit", "2\n"),
        ),
    ] {
        let srv = setup.control("badrcptto", "trap@example.org\n").start();
        let out = smtplib(
            &srv,
            "client.test",
            "a@sender.test",
            &["trap@example.org", "x@elsewhere.test", "ok@example.org"],
        );
        assert_eq!(
            out, "trap@example.org 553\nx@elsewhere.test 553\nok@example.org 421\n",
            "{name}"
        );
        assert!(
            srv.stderr_log().contains("how=too_many_invalid_rcpts"),
            "{name}"
        );
        assert!(srv.queued().is_empty());
    }
}

#[test]
fn relayrej_refuses_routing_even_for_relay_clients() {
    for setup in [
        Setup::new("relayrej-env").env("RELAYREJ", "1"),
        Setup::new("relayrej-file").control("rejectrelaytest", "1\n"),
    ] {
        let srv = setup.env("RELAYCLIENT", "").start();
        let mut c = session(&srv);
        assert_eq!(
            rcpt(&mut c, "a%b@example.org"),
            "553 5.7.1 sorry, we don't relay\r\n"
        );
        assert!(rcpt(&mut c, "a!b@example.org").starts_with("553 5.7.1 sorry, we don't relay"));
        assert!(rcpt(&mut c, "ab@elsewhere.test").starts_with("250 "));
    }
    // Off by default: a relay client may use the percent hack.
    let srv = Setup::new("relayrej-off").env("RELAYCLIENT", "").start();
    let mut c = session(&srv);
    assert!(rcpt(&mut c, "a%b@example.org").starts_with("250 "));
}

#[test]
fn badhelo_regexes_negation_and_nobadhelo() {
    let badhelo = "^localhost$\n[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+\n!\\.\nbroken(\n";
    let srv = Setup::new("badhelo")
        .control("badhelo", badhelo)
        .control("badhelonorelay", "\\.dyn\\.\n")
        .env("LOGREGEX", "")
        .start();
    for (helo, want) in [
        ("LocalHost", "553"),
        ("host-192.0.2.7.isp.example", "553"),
        ("nodots", "553"),
        ("mx.client.example", "250"),
        ("a.dyn.example", "553"),
    ] {
        let out = smtplib(&srv, helo, "a@sender.test", &["x@example.org"]);
        assert!(
            out.starts_with(&format!("x@example.org {want}\n")),
            "{helo}: {out}"
        );
    }
    let log = srv.stderr_log();
    assert!(
        log.contains("badhelo: pattern \"broken(\" does not compile"),
        "{log}"
    );
    assert!(
        log.contains("refused by badhelo pattern \"^localhost$\""),
        "{log}"
    );

    let mut c = Client::connect(&srv);
    c.reply();
    c.send(b"HELO localhost\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<x@example.org>\r\n");
    c.reply();
    c.reply();
    assert_eq!(
        c.reply(),
        "553 5.7.1 sorry, your HELO host name has been denied\r\n"
    );
    // A new HELO is judged afresh.
    c.send(b"HELO mx.client.example\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<x@example.org>\r\n");
    c.reply();
    c.reply();
    assert!(c.reply().starts_with("250 "));

    let srv = Setup::new("nobadhelo")
        .control("badhelo", badhelo)
        .env("NOBADHELO", "")
        .start();
    let out = smtplib(&srv, "localhost", "a@sender.test", &["x@example.org"]);
    assert!(out.starts_with("x@example.org 250\n"), "{out}");

    // badhelonorelay does not apply to a relay client; badhelo does.
    let srv = Setup::new("badhelo-relay")
        .control("badhelo", "^localhost$\n")
        .control("badhelonorelay", "\\.dyn\\.\n")
        .env("RELAYCLIENT", "")
        .start();
    let out = smtplib(&srv, "a.dyn.example", "a@sender.test", &["x@example.org"]);
    assert!(out.starts_with("x@example.org 250\n"), "{out}");
    let out = smtplib(&srv, "localhost", "a@sender.test", &["x@example.org"]);
    assert!(out.starts_with("x@example.org 553\n"), "{out}");
}

#[test]
fn badrcptto_and_the_norelay_lists() {
    let srv = Setup::new("badrcptto")
        .control("badrcptto", "trap@example.org\n@spam.wild.example\n")
        .control("badrcpttonorelay", "internal@example.org\n")
        .control("badmailfromnorelay", "@forged.test\n")
        .start();
    let mut c = session(&srv);
    assert_eq!(
        rcpt(&mut c, "TRAP@example.org"),
        "553 5.7.1 sorry, your envelope recipient has been denied\r\n"
    );
    assert!(
        rcpt(&mut c, "x@spam.wild.example").starts_with("553 5.7.1 sorry, your envelope recipient")
    );
    assert!(
        rcpt(&mut c, "internal@example.org")
            .starts_with("553 5.7.1 sorry, your envelope recipient")
    );
    assert!(rcpt(&mut c, "fine@example.org").starts_with("250 "));
    let out = smtplib(&srv, "client.test", "x@forged.test", &["fine@example.org"]);
    assert_eq!(out, "fine@example.org 553\n");

    // A relay client: the norelay lists do not apply, badrcptto does.
    let srv = Setup::new("badrcptto-relay")
        .control("badrcptto", "trap@example.org\n")
        .control("badrcpttonorelay", "internal@example.org\n")
        .control("badmailfromnorelay", "@forged.test\n")
        .env("RELAYCLIENT", "")
        .start();
    let out = smtplib(
        &srv,
        "client.test",
        "x@forged.test",
        &["internal@example.org", "trap@example.org"],
    );
    assert_eq!(
        out,
        "internal@example.org 250\ntrap@example.org 553\ndata 250\n"
    );
}

const DENIED_RCPT: &str = "553 5.7.1 sorry, your envelope recipient has been denied\r\n";
const DENIED_SENDER: &str = "553 5.7.1 sorry, your envelope sender is in my badmailfrom list\r\n";

/// RCPT replies (full text) after one MAIL, through a raw client.
fn replies(srv: &common::Server, sender: &str, rcpts: &[&str]) -> Vec<String> {
    let mut c = Client::connect(srv);
    assert!(c.reply().starts_with("220 "));
    c.send(format!("HELO client.test\r\nMAIL FROM:<{sender}>\r\n").as_bytes());
    assert!(c.reply().starts_with("250 "));
    assert!(c.reply().starts_with("250 "), "MAIL is always accepted");
    rcpts.iter().map(|r| rcpt(&mut c, r)).collect()
}

#[test]
fn qregex_badmailfrom_and_badrcptto() {
    let srv = Setup::new("qregex")
        .control(
            "badmailfrom",
            "^bounce-.*@\nold@classic.test\n@classicdomain.test\nbroken(@x.test\n",
        )
        .control(
            "badrcptto",
            ".*@spam\\.wild\\.example$\ntrap@example.org\n![@.](example\\.org|wild\\.example)$\n",
        )
        .control("badmailfromnorelay", "[0-9]+@forged\\.test$\n")
        .control("badrcpttonorelay", "^internal-\n")
        .env("LOGREGEX", "")
        .start();
    // Senders: a regular expression, the classic address and @domain
    // lines, a line that does not compile (still an exact entry).
    for (sender, refused) in [
        ("BOUNCE-123@list.test", true),
        ("nobounce-1@list.test", false),
        ("old@classic.test", true),
        ("someone@ClassicDomain.test", true),
        ("someone@sub.classicdomain.test", false),
        ("broken(@x.test", true),
        ("broken@x.test", false),
        ("a1@forged.test", true),
        ("a@forged.test", false),
        ("a1@forged.test.example", false),
    ] {
        let r = replies(&srv, sender, &["fine@example.org"]);
        let want = if refused {
            DENIED_SENDER
        } else {
            "250 2.1.5 ok\r\n"
        };
        assert_eq!(r[0], want, "{sender}");
    }
    // The null sender is never matched, not even by a pattern that
    // matches every address.
    assert_eq!(
        replies(&srv, "", &["fine@example.org"])[0],
        "250 2.1.5 ok\r\n"
    );

    let r = replies(
        &srv,
        "a@sender.test",
        &[
            "x@spam.wild.example",
            "X@SPAM.Wild.Example",
            "x@ham.wild.example",
            "x@spamxwild.wild.example",
            "trap@example.org",
            "bigtrap@example.org",
            "keep@example.org",
            "internal-7@example.org",
            "not-internal-7@example.org",
            "x@elsewhere.test",
        ],
    );
    assert_eq!(
        r,
        [
            DENIED_RCPT,
            DENIED_RCPT,
            "250 2.1.5 ok\r\n",
            "250 2.1.5 ok\r\n",
            DENIED_RCPT,
            // A plain line is an exact entry, as in qmail.
            "250 2.1.5 ok\r\n",
            "250 2.1.5 ok\r\n",
            DENIED_RCPT,
            "250 2.1.5 ok\r\n",
            // `!` negates (sagredo): outside those domains, refused
            // (before rcpthosts would have said so).
            DENIED_RCPT,
        ]
    );
    let log = srv.stderr_log();
    assert!(
        log.contains("badmailfrom: line \"broken(@x.test\" is not a valid regular expression"),
        "{log}"
    );
    assert!(
        log.contains("refused by badmailfrom line \"^bounce-.*@\""),
        "{log}"
    );
    assert!(
        log.contains("refused by badmailfromnorelay line \"[0-9]+@forged\\.test$\""),
        "{log}"
    );
    assert!(
        log.contains("refused by badrcptto line \".*@spam\\.wild\\.example$\""),
        "{log}"
    );
    assert!(
        log.contains("refused by badrcpttonorelay line \"^internal-\""),
        "{log}"
    );

    // A relay client: the norelay files do not apply; badmailfrom and
    // badrcptto do, regular expressions included. swaks delivers only
    // what passes.
    let srv = Setup::new("qregex-relay")
        .control("badmailfrom", "^bounce-.*@\n")
        .control("badrcptto", ".*@spam\\.wild\\.example$\n")
        .control("badmailfromnorelay", ".*@forged\\.test$\n")
        .control("badrcpttonorelay", "^internal-\n")
        .env("RELAYCLIENT", "")
        .start();
    let out = smtplib(
        &srv,
        "client.test",
        "a@forged.test",
        &["internal-1@example.org", "x@spam.wild.example"],
    );
    assert_eq!(
        out,
        "internal-1@example.org 250\nx@spam.wild.example 553\ndata 250\n"
    );
    let o = srv.swaks(&["--from", "bounce-9@list.test", "--to", "x@example.org"]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("553 5.7.1 sorry, your envelope sender is in my badmailfrom list"),
        "{t}"
    );
    let o = srv.swaks(&["--from", "a@list.test", "--to", "x@example.org"]);
    assert!(o.status.success(), "{}", text(&o));
    let q = srv.queued();
    assert_eq!(q.len(), 2);
    assert!(
        q.iter()
            .all(|(_, e)| !e.windows(9).any(|w| w == b"bounce-9@"))
    );
}

#[test]
fn qregex_null_sender_and_catch_all() {
    // A pattern matching every address refuses every sender but <>.
    let srv = Setup::new("qregex-null")
        .control("badmailfrom", ".*\n")
        .start();
    assert_eq!(
        replies(&srv, "a@sender.test", &["x@example.org"])[0],
        DENIED_SENDER
    );
    assert_eq!(replies(&srv, "", &["x@example.org"])[0], "250 2.1.5 ok\r\n");
    let o = srv.swaks(&["--from", "<>", "--to", "x@example.org"]);
    assert!(o.status.success(), "{}", text(&o));
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert!(q[0].1.starts_with(b"F\0Tx@example.org\0"), "{:?}", q[0].1);
}
