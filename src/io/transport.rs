//! The client link: plain fds, or TLS over them after STARTTLS / SMTPS.

use std::sync::Arc;

use super::fd::{FdTransport, IoError};
use super::tls::{HandshakeError, ServerConfig, TlsInfo, TlsTransport};

pub enum Transport {
    Plain(FdTransport),
    Tls(Box<TlsTransport>),
    /// A handshake failed: the link is unusable.
    Broken,
}

impl Transport {
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        match self {
            Transport::Plain(t) => t.read(buf),
            Transport::Tls(t) => t.read(buf),
            Transport::Broken => Ok(0),
        }
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<(), IoError> {
        match self {
            Transport::Plain(t) => t.write_all(data),
            Transport::Tls(t) => t.write_all(data),
            Transport::Broken => Err(IoError::Io(std::io::ErrorKind::NotConnected.into())),
        }
    }

    /// Run the TLS handshake on the plain link. The caller has already
    /// thrown away any plaintext it read but did not process
    /// (CVE-2011-0411): only bytes read from here on reach TLS.
    /// `by_name` gives the configuration for an SNI name, if it has one.
    pub fn start_tls(
        &mut self,
        config: Arc<ServerConfig>,
        by_name: &dyn Fn(&str) -> Option<Arc<ServerConfig>>,
    ) -> Result<TlsInfo, HandshakeError> {
        match std::mem::replace(self, Transport::Broken) {
            Transport::Plain(fd) => {
                let (tls, info) = TlsTransport::handshake(fd, config, by_name)?;
                *self = Transport::Tls(Box::new(tls));
                Ok(info)
            }
            other => {
                *self = other;
                Err(HandshakeError::Tls("TLS is already active".into()))
            }
        }
    }

    /// See [`FdTransport::set_read_deadline`].
    pub fn set_read_deadline(&mut self, deadline: Option<std::time::Instant>) {
        match self {
            Transport::Plain(t) => t.set_read_deadline(deadline),
            Transport::Tls(t) => t.fd_mut().set_read_deadline(deadline),
            Transport::Broken => {}
        }
    }

    /// End the link politely (close_notify under TLS).
    pub fn close(&mut self) {
        if let Transport::Tls(t) = self {
            t.close();
        }
    }
}
