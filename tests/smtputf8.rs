//! SMTPUTF8 (RFC 6531) through real tcpserver with Python smtplib and a
//! raw client: advertised, UTF-8 addresses accepted after `MAIL …
//! SMTPUTF8` (and validated), sagredo's `with UTF8SMTP…` Received word,
//! 553 5.6.7 for a non-ASCII address without the parameter.

mod common;

use common::{Client, Setup, python};

#[test]
fn utf8_addresses_are_queued_with_the_utf8smtp_marker() {
    let srv = Setup::new("utf8").start();
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("client.test")
print(s.has_extn("smtputf8"))
s.sendmail("jörg@bücher.example", ["ünïcødé@example.org", "用户@example.org"],
           "Subject: t\r\n\r\nhi\r\n".encode(), mail_options=["SMTPUTF8"])
# The next transaction, without the parameter, is plain ESMTP again.
s.sendmail("a@sender.test", ["b@example.org"], b"Subject: u\r\n\r\nhi\r\n")
s.quit()
"#,
        port = srv.port
    ));
    assert_eq!(out, "True\n");
    let q = srv.queued();
    assert_eq!(q.len(), 2);
    assert!(
        q[0].0.contains("\n  by mx.test with UTF8SMTP; "),
        "{}",
        q[0].0
    );
    assert_eq!(
        q[0].1,
        "Fjörg@bücher.example\0Tünïcødé@example.org\0T用户@example.org\0\0".as_bytes()
    );
    assert!(q[1].0.contains("\n  by mx.test with ESMTP; "), "{}", q[1].0);
}

#[test]
fn utf8smtpsa_after_starttls_and_auth() {
    let srv = Setup::new("utf8-sa").cert().auth().start();
    python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", {port})
s.starttls(context=ctx)
s.login("alice", "wonderland")
s.sendmail("alice@sender.test", ["zoë@elsewhere.test"], b"Subject: t\r\n\r\nhi\r\n",
           mail_options=["SMTPUTF8"])
s.quit()
"#,
        port = srv.port
    ));
    let q = srv.queued();
    assert_eq!(q.len(), 1);
    assert!(q[0].0.contains(" with UTF8SMTPSA (TLSv1.3 "), "{}", q[0].0);
}

#[test]
fn non_ascii_without_smtputf8_and_invalid_utf8_are_refused() {
    let srv = Setup::new("utf8-refused").start();
    let mut c = Client::connect(&srv);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    assert!(c.reply().contains("250-SMTPUTF8\r\n"));
    c.send("MAIL FROM:<jörg@sender.test>\r\n".as_bytes());
    assert_eq!(
        c.reply(),
        "553 5.6.7 non-ASCII address requires MAIL FROM:<...> SMTPUTF8\r\n"
    );
    c.send(b"MAIL FROM:<a@sender.test>\r\n");
    assert!(c.reply().starts_with("250 "));
    c.send("RCPT TO:<jörg@example.org>\r\n".as_bytes());
    assert!(c.reply().starts_with("553 5.6.7 "));
    c.send(b"RSET\r\nMAIL FROM:<a@sender.test> SMTPUTF8\r\n");
    c.reply();
    assert!(c.reply().starts_with("250 "));
    c.send(b"RCPT TO:<j\xf6rg@example.org>\r\n");
    assert_eq!(c.reply(), "501 5.1.3 bad address syntax\r\n");
    c.send("RCPT TO:<jörg@example.org>\r\n".as_bytes());
    assert!(c.reply().starts_with("250 "));
    // RSET ends the transaction and its SMTPUTF8.
    c.send("RSET\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<jörg@example.org>\r\n".as_bytes());
    c.reply();
    c.reply();
    assert!(c.reply().starts_with("553 5.6.7 "));
}
