//! Edges: everything that touches the outside. The client connection on
//! fd 0 (input) and fd 1 (output), plain or TLS (the only module that names
//! `rustls` is `tls`); control files and the environment; children
//! (qmail-queue, checkpassword, qmail-spp plugins, RCPTCHECK) bounded in
//! time and output; the policy service socket; the log on stderr.

pub mod checkpassword;
pub mod child;
pub mod control;
pub mod fd;
pub mod greetdelay;
pub mod log;
pub mod plugins;
pub mod policy_client;
pub mod proxy;
pub mod queue;
pub mod rcpt_control;
pub mod rcptcheck;
pub mod tls;
pub mod transport;
