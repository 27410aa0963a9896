//! Edge: one line per event on stderr, prefixed with the program name and
//! pid so multilog/fail2ban can attribute it. Never given secrets.

use std::io::Write;

pub fn line(msg: &str) {
    let pid = std::process::id();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "qmail-smtpd: pid {pid}: {msg}");
}
