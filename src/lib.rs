//! qmail-smtpd in Rust. The folders say which side a module is on:
//!
//! - [`smtp`]: the pure SMTP core (parser, replies, DATA scanner, Received
//!   header, AUTH exchanges, the session state machine);
//! - [`core`]: every other pure decision and parser of outside input
//!   (policy engine, tcprules, PROXY header, certificates, qmail-spp,
//!   policy delegation, recipient checks, greeting delay, slow clients);
//! - [`io`]: the edges that feed the core facts from files, the
//!   environment, fds, sockets and child processes;
//! - [`cli`]: the operator commands `--explain` and `--check`.
//!
//! `main.rs` wires them together.

#![deny(unsafe_code)]

pub mod cli;
pub mod core;
pub mod io;
pub mod smtp;
