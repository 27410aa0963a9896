//! AUTH log lines name the user only when it is printable and well-formed
//! (issue 12): a NUL, control characters or over 64 bytes is logged as
//! `user=<invalid>`, so a password typed into the user field or a forged
//! `alice\0password` never reaches the log. Through real tcpserver.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Client, Setup};

fn b64(s: &[u8]) -> String {
    STANDARD.encode(s)
}

#[test]
fn forged_or_odd_user_fields_are_logged_as_invalid() {
    let srv = Setup::new("auth-log")
        .auth()
        .env("ALLOW_INSECURE_AUTH", "1")
        .env("AUTH_MAX_FAILURES", "10")
        .start();
    let mut c = Client::connect(&srv);
    c.reply();
    c.send(b"EHLO client.test\r\n");
    c.reply();
    let long = vec![b'u'; 65];
    let users: [&[u8]; 4] = [b"alice\0wonderland", b"ali\x07ce", &long, b"alice"];
    for user in users {
        c.send(format!("AUTH LOGIN {}\r\n", b64(user)).as_bytes());
        let r = c.reply();
        if r.starts_with("334") {
            c.send(format!("{}\r\n", b64(b"Secret-Typed-Here")).as_bytes());
            let r = c.reply();
            assert!(r.starts_with("535 "), "{r}");
        } else {
            assert!(r.starts_with("535 "), "{r}");
        }
    }
    c.send(b"QUIT\r\n");
    c.reply();
    let log = srv.stderr_log();
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("AUTH failed:")).collect();
    assert_eq!(failed.len(), 4, "{log}");
    for l in &failed[..3] {
        assert!(l.contains(" user=<invalid> "), "{l}");
    }
    assert!(failed[3].contains(" user=\"alice\" "), "{}", failed[3]);
    assert!(!log.contains("wonderland"), "{log}");
    assert!(!log.contains("Secret-Typed-Here"), "{log}");
    assert!(
        !log.contains("uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"),
        "{log}"
    );
}
