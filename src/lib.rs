//! qmail-smtpd in Rust: a pure SMTP core (`smtp`) and thin edges
//! (`control`, `io`, `queue`) that feed it facts from files, fds and child
//! processes. `main.rs` wires them together.

#![deny(unsafe_code)]

pub mod auth;
pub mod certrelay;
pub mod check;
pub mod checkpassword;
pub mod child;
pub mod control;
pub mod explain;
pub mod io;
pub mod log;
pub mod policy;
pub mod proxy;
pub mod queue;
pub mod smtp;
pub mod sni;
pub mod tcprules;
pub mod x509;
