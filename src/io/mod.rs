//! Edge: the client connection on fd 0 (input) and fd 1 (output), plain or
//! TLS. The only module that names `rustls` is `tls`.

pub mod fd;
pub mod proxy;
pub mod tls;
pub mod transport;
