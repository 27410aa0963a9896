//! Slow clients through real tcpserver, with timeoutsmtpd of 2 seconds: a
//! command line dripped a byte at a time and a message dripped at 12
//! bytes/s are cut with 421 4.4.2 (nothing queued); a fast-enough link is
//! never cut; SMTPD_MIN_DATA_RATE=0 turns the DATA rate off.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Client, Setup};

/// Send `data` a chunk every `every` until the server closes or `limit`
/// passes; returns what the server said and when it closed.
fn drip(
    c: &mut Client,
    data: &[u8],
    chunk: usize,
    every: Duration,
    limit: Duration,
) -> Option<Duration> {
    let t0 = Instant::now();
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        if c.s.write_all(piece).is_err() {
            return Some(t0.elapsed());
        }
        if i + 1 == pieces.len() {
            return None;
        }
        std::thread::sleep(every);
        if t0.elapsed() > limit {
            return None;
        }
        // Something to read means the server gave up on us.
        c.s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let peek = c.s.peek(&mut b);
        c.s.set_nonblocking(false).unwrap();
        if peek.is_ok() {
            return Some(t0.elapsed());
        }
    }
    None
}

#[test]
fn dripped_command_line_is_cut_after_timeoutsmtpd() {
    let srv = Setup::new("slow-line")
        .control("timeoutsmtpd", "2\n")
        .start();
    let mut c = Client::connect(&srv);
    assert!(c.reply().starts_with("220 "));
    // One byte every 0.5 s: each read is well inside the 2 s timeout.
    let line = b"HELO a-very-slow-client-that-never-finishes-its-line.example.org\r\n";
    let cut = drip(
        &mut c,
        line,
        1,
        Duration::from_millis(500),
        Duration::from_secs(15),
    );
    assert!(cut.is_some(), "never cut");
    assert_eq!(c.reply(), "421 4.4.2 timeout, closing connection\r\n");
    assert!(c.closed());
    let log = srv.stderr_log();
    assert!(
        log.contains("client too slow: command line not complete within timeoutsmtpd"),
        "{log}"
    );
}

fn start_data(c: &mut Client) {
    assert!(c.reply().starts_with("220 "));
    c.send(b"HELO client.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    for want in ["250 ", "250 ", "250 ", "354 "] {
        let r = c.reply();
        assert!(r.starts_with(want), "{r}");
    }
}

#[test]
fn dripped_message_is_cut_and_nothing_is_queued() {
    let srv = Setup::new("slow-data")
        .control("timeoutsmtpd", "2\n")
        .start();
    let mut c = Client::connect(&srv);
    start_data(&mut c);
    let mut body = b"Subject: drip\r\n\r\n".to_vec();
    body.extend(std::iter::repeat_n(b'x', 600));
    body.extend_from_slice(b"\r\n.\r\n");
    // 12 bytes a second, in 3-byte pieces.
    let cut = drip(
        &mut c,
        &body,
        3,
        Duration::from_millis(250),
        Duration::from_secs(15),
    );
    assert!(cut.is_some(), "never cut");
    assert_eq!(c.reply(), "421 4.4.2 timeout, closing connection\r\n");
    assert!(c.closed());
    assert!(srv.queued().is_empty());
    let log = srv.stderr_log();
    assert!(
        log.contains("client too slow: message data below the minimum rate"),
        "{log}"
    );
}

#[test]
fn fast_enough_links_are_never_cut() {
    let srv = Setup::new("slow-ok").control("timeoutsmtpd", "1\n").start();
    let mut c = Client::connect(&srv);
    start_data(&mut c);
    // 200 KB/s for 3 s (three times the timeout), in 50 KB steps.
    let mut body = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..600 {
        body.extend(std::iter::repeat_n(b'y', 998));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    let cut = drip(
        &mut c,
        &body,
        50_000,
        Duration::from_millis(250),
        Duration::from_secs(30),
    );
    assert_eq!(cut, None);
    assert!(c.reply().starts_with("250 2.0.0 ok"));
    assert_eq!(srv.queued().len(), 1);
}

#[test]
fn min_data_rate_zero_turns_the_rate_off() {
    let srv = Setup::new("slow-off")
        .control("timeoutsmtpd", "1\n")
        .env("SMTPD_MIN_DATA_RATE", "0")
        .start();
    let mut c = Client::connect(&srv);
    start_data(&mut c);
    // 8 bytes every 0.5 s for about 2.5 s: only the per-read timeout.
    let body = b"Subject: s\r\n\r\nslow but steady\r\n.\r\n";
    let cut = drip(
        &mut c,
        body,
        8,
        Duration::from_millis(500),
        Duration::from_secs(15),
    );
    assert_eq!(cut, None);
    assert!(c.reply().starts_with("250 2.0.0 ok"));
}
