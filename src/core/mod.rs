//! The pure decisions and parsers beside the SMTP core: inputs in, replies
//! and actions out. Nothing here opens files, reads the environment,
//! touches fds, reads the clock or runs children; the edges in
//! [`crate::io`] do that and hand the facts in.

pub mod certrelay;
pub mod greetdelay;
pub mod policy;
pub mod policy_delegation;
pub mod proxy;
pub mod rcpt_checks;
pub mod rcptcheck;
pub mod slowclient;
pub mod sni;
pub mod spp;
pub mod tcprules;
pub mod x509;
