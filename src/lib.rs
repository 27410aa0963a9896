//! qmail-smtpd in Rust: a pure SMTP core (`smtp`) and thin edges
//! (`control`, `io`, `queue`) that feed it facts from files, fds and child
//! processes. `main.rs` wires them together.

#![deny(unsafe_code)]

pub mod auth;
pub mod certrelay;
pub mod check;
pub mod check_rcpt;
pub mod checkpassword;
pub mod child;
pub mod control;
pub mod explain;
pub mod greetdelay;
pub mod io;
pub mod log;
pub mod plugins;
pub mod policy;
pub mod policy_client;
pub mod policy_delegation;
pub mod proxy;
pub mod queue;
pub mod rcpt_checks;
pub mod rcpt_control;
pub mod rcptcheck;
pub mod rcptcheck_run;
pub mod slowclient;
pub mod smtp;
pub mod sni;
pub mod spp;
pub mod tcprules;
pub mod x509;
