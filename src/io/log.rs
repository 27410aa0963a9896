//! Edge: one line per event on stderr, prefixed with the program name and
//! pid so multilog/fail2ban can attribute it. Never given secrets.

use std::io::Write;

/// One line, in one write(2): lines of concurrent connections sharing a
/// log pipe must not interleave.
pub fn line(msg: &str) {
    let line = format!("qmail-smtpd: pid {}: {msg}\n", std::process::id());
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
