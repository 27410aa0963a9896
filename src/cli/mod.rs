//! The operator commands: `qmail-smtpd --explain` and `--check`. They read
//! what a connection would read and run the real core on it.

pub mod check;
pub mod check_rcpt;
pub mod explain;
