//! The pure SMTP core: parser, replies, DATA scanner, Received header, the
//! AUTH mechanism exchanges and the session state machine. Nothing here
//! touches files, sockets, the environment, the clock or child processes.

pub mod auth;
pub mod command;
pub mod data;
pub mod received;
pub mod reply;
pub mod session;
