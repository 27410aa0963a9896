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

/// A small file read whole, without the statx that `std::fs::read` makes
/// for a size hint (`take` hides the file from that): `capacity` is the
/// first read's size, enough for most such files in one read.
pub fn read_small(path: &std::path::Path, capacity: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::with_capacity(capacity);
    std::fs::File::open(path)?
        .take(u64::MAX)
        .read_to_end(&mut data)?;
    Ok(data)
}
