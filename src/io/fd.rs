//! The plain transport: fd 0 in, fd 1 out, every read and write bounded by
//! `timeoutsmtpd` (qmail's `timeoutread`/`timeoutwrite`).
//!
//! Writes to a socket use `MSG_DONTWAIT`, so a client that stops reading
//! cannot block us past the timeout even when the batch is larger than the
//! socket buffer. `TCP_NODELAY` is set on fd 1 when it is a TCP socket: we
//! already write each batch of replies in one call, and Nagle's algorithm
//! would only add a delayed-ACK stall per reply under a `tcpserver` run
//! without `-D`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send, setsockopt, sockopt};

/// Why an I/O step failed.
#[derive(Debug)]
pub enum IoError {
    /// No progress within the timeout.
    Timeout,
    Io(io::Error),
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoError::Timeout => f.write_str("timeout"),
            IoError::Io(e) => e.fmt(f),
        }
    }
}

impl From<Errno> for IoError {
    fn from(e: Errno) -> IoError {
        IoError::Io(io::Error::from(e))
    }
}

pub struct FdTransport {
    timeout: Duration,
    /// A read must end by then, whatever `timeout` allows (greeting
    /// delay, slow clients).
    read_deadline: Option<Instant>,
    out_is_socket: bool,
    stdin: std::io::Stdin,
    stdout: std::io::Stdout,
}

impl FdTransport {
    /// Set up the transport; turns on `TCP_NODELAY` when fd 1 is a socket.
    pub fn new(timeout: Duration) -> FdTransport {
        let stdout = std::io::stdout();
        let out = stdout.as_fd();
        let out_is_socket = setsockopt(&out, sockopt::TcpNoDelay, &true).is_ok()
            || nix::sys::socket::getsockopt(&out, sockopt::SockType).is_ok();
        FdTransport {
            timeout,
            read_deadline: None,
            out_is_socket,
            stdin: std::io::stdin(),
            stdout,
        }
    }

    /// Acknowledge what the client sent now, not after the delayed-ACK
    /// timer (up to 40 ms on Linux). For the end of a TLS 1.3 handshake
    /// after STARTTLS: the client's Finished gets no answer from us (we
    /// send no session tickets), and the client speaks next; a client with
    /// Nagle's algorithm on (Python's smtplib, and others) holds its EHLO
    /// until that Finished is acknowledged, so every session stalled for
    /// the delayed ACK (48 ms against 3 ms). Linux sends a pending ACK at
    /// once when TCP_QUICKACK is set. Not a socket, or not TCP: nothing.
    #[allow(unsafe_code)]
    pub fn ack_now(&self) {
        use nix::libc::{IPPROTO_TCP, TCP_QUICKACK, c_int, setsockopt, socklen_t};
        let on: c_int = 1;
        // SAFETY: fd 0 stays open for the process's life; the option value
        // is a c_int that lives across the call, its size given. (nix has
        // no name for TCP_QUICKACK.)
        unsafe {
            setsockopt(
                self.stdin.as_fd().as_raw_fd(),
                IPPROTO_TCP,
                TCP_QUICKACK,
                (&raw const on).cast(),
                socklen_t::try_from(std::mem::size_of::<c_int>()).unwrap_or(4),
            );
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads (not writes) end with [`IoError::Timeout`] at `deadline`
    /// even when the timeout would allow more; `None` lifts it.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline;
    }

    /// Wait until `fd` is ready for `events`, at most the timeout (and,
    /// for reads, the read deadline).
    fn wait(&self, fd: BorrowedFd<'_>, events: PollFlags) -> Result<(), IoError> {
        let mut deadline = Instant::now() + self.timeout;
        if events == PollFlags::POLLIN {
            if let Some(d) = self.read_deadline {
                deadline = deadline.min(d);
            }
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(IoError::Timeout);
            }
            let ms = u32::try_from(left.as_micros().div_ceil(1000).max(1)).unwrap_or(u32::MAX);
            let mut fds = [PollFd::new(fd, events)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) => return Err(IoError::Timeout),
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Read what is available (at least one byte), or `Ok(0)` at EOF.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        let fd = self.stdin.as_fd();
        loop {
            self.wait(fd, PollFlags::POLLIN)?;
            match nix::unistd::read(fd, buf) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Write all of `data`, each step bounded by the timeout.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), IoError> {
        let fd = self.stdout.as_fd();
        while !data.is_empty() {
            let r = if self.out_is_socket {
                send(
                    fd.as_raw_fd(),
                    data,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                )
            } else {
                self.wait(fd, PollFlags::POLLOUT)?;
                nix::unistd::write(fd, data)
            };
            match r {
                Ok(0) => return Err(IoError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.wait(fd, PollFlags::POLLOUT)?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
