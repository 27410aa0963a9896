//! Limits on clients that send too slowly for qmail's per-read timeout to
//! notice: a byte every `timeoutsmtpd - 1` seconds keeps a connection
//! alive for ever. Two deadlines close that gap:
//!
//! - a command line must arrive whole within `timeoutsmtpd` of its first
//!   byte, however its bytes drip;
//! - DATA must keep a minimum rate (default 500 bytes/s, as Postfix's
//!   `smtpd_min_data_rate`): each message byte received buys `1/rate`
//!   seconds on top of a first `timeoutsmtpd`, so the message must be
//!   complete by `start + timeoutsmtpd + bytes/rate`. A 20 MB message at
//!   1 MB/s is far inside that; 12 bytes/s is cut just after the first
//!   `timeoutsmtpd`.
//!
//! Pure: the edge reports reads and the session's state with the time;
//! [`Pace::deadline`] says when the next read must end.

use std::time::{Duration, Instant};

/// Default minimum DATA rate, bytes per second.
pub const DEFAULT_MIN_DATA_RATE: u64 = 500;

/// What the edge tells [`Pace`] after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Between commands (or waiting for an AUTH response) with no bytes
    /// of the next line yet.
    Idle,
    /// Part of a command line is held: this many bytes of it
    /// (`usize::MAX` while an over-long line is being thrown away).
    PartialLine(usize),
    /// Reading a message.
    Data,
}

/// Why a deadline ended the connection, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    CommandLine,
    DataRate,
}

#[derive(Debug, Clone)]
pub struct Pace {
    timeout: Duration,
    /// Bytes per second; 0 turns the DATA rate off.
    min_rate: u64,
    line_started: Option<Instant>,
    /// When DATA began, and the bytes read since.
    data: Option<(Instant, u64)>,
}

impl Pace {
    pub fn new(timeout: Duration, min_rate: u64) -> Pace {
        Pace {
            timeout,
            min_rate,
            line_started: None,
            data: None,
        }
    }

    /// After a read of `n` bytes at `now` was fed to the session, which is
    /// now in `state`. DATA bytes are counted from the read that started
    /// DATA on (they include the command's own tail, a few bytes).
    pub fn after_read(&mut self, now: Instant, n: usize, state: State) {
        match state {
            State::Idle => {
                self.line_started = None;
                self.data = None;
            }
            State::PartialLine(held) => {
                self.data = None;
                // All of it came in this read: a new line began now (a
                // client streaming pipelined commands makes progress).
                if held <= n || self.line_started.is_none() {
                    self.line_started = Some(now);
                }
            }
            State::Data => {
                self.line_started = None;
                let (_, bytes) = self.data.get_or_insert((now, 0));
                *bytes = bytes.saturating_add(n as u64);
            }
        }
    }

    /// The session changed state without a read (a reply from the queue,
    /// say): DATA over, or a new command line not yet begun.
    pub fn state(&mut self, now: Instant, state: State) {
        self.after_read(now, 0, state);
    }

    /// When the next read must have ended, and which limit that is; `None`:
    /// only the per-read timeout applies.
    pub fn deadline(&self) -> Option<(Instant, Limit)> {
        if let Some(start) = self.line_started {
            return Some((start + self.timeout, Limit::CommandLine));
        }
        let (start, bytes) = self.data?;
        if self.min_rate == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(bytes as f64 / self.min_rate as f64);
        Some((start + self.timeout + earned, Limit::DataRate))
    }
}

impl Limit {
    pub fn describe(self) -> &'static str {
        match self {
            Limit::CommandLine => "command line not complete within timeoutsmtpd",
            Limit::DataRate => "message data below the minimum rate (SMTPD_MIN_DATA_RATE)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn dripping_command_line_has_one_deadline() {
        let t0 = Instant::now();
        let mut p = Pace::new(T, DEFAULT_MIN_DATA_RATE);
        assert_eq!(p.deadline(), None);
        for i in 0..100 {
            p.after_read(
                t0 + Duration::from_secs(i),
                1,
                State::PartialLine(i as usize + 1),
            );
            assert_eq!(p.deadline(), Some((t0 + T, Limit::CommandLine)));
        }
        // A read that completes the line and starts the next one.
        let t1 = t0 + Duration::from_secs(200);
        p.after_read(t1, 50, State::PartialLine(20));
        assert_eq!(p.deadline(), Some((t1 + T, Limit::CommandLine)));
        p.after_read(t1 + T, 5000, State::PartialLine(usize::MAX));
        assert_eq!(
            p.deadline(),
            Some((t1 + T, Limit::CommandLine)),
            "over-long: no new start"
        );
        p.after_read(t0 + Duration::from_secs(3), 5, State::Idle);
        assert_eq!(p.deadline(), None, "a complete line lifts it");
    }

    /// Simulate a client sending `rate` bytes/s in reads every `step`;
    /// returns whether the whole `size` arrives before the deadline.
    fn survives(rate: u64, size: u64, step: Duration) -> bool {
        let t0 = Instant::now();
        let mut p = Pace::new(T, DEFAULT_MIN_DATA_RATE);
        p.after_read(t0, 6, State::Data);
        let per_step = ((rate as f64) * step.as_secs_f64()) as u64;
        let mut sent = 0;
        let mut now = t0;
        while sent < size {
            now += step;
            if let Some((d, _)) = p.deadline() {
                if now > d {
                    return false;
                }
            }
            p.after_read(now, per_step as usize, State::Data);
            sent += per_step;
        }
        true
    }

    #[test]
    fn data_rate() {
        let s = Duration::from_millis(100);
        assert!(survives(1_000_000, 20_000_000, s), "20 MB at 1 MB/s");
        assert!(survives(600, 100_000, s), "just above the minimum");
        assert!(!survives(12, 10_000, s), "12 bytes/s is cut");
        assert!(!survives(400, 100_000, s), "below the minimum is cut");
        // Cut soon after the first timeout at 12 bytes/s.
        let t0 = Instant::now();
        let mut p = Pace::new(T, DEFAULT_MIN_DATA_RATE);
        p.after_read(t0, 0, State::Data);
        p.after_read(t0 + T, 120, State::Data);
        let (d, limit) = p.deadline().unwrap();
        assert_eq!(limit, Limit::DataRate);
        assert!(d < t0 + T + Duration::from_secs(1));
    }

    #[test]
    fn rate_zero_turns_the_data_limit_off() {
        let t0 = Instant::now();
        let mut p = Pace::new(T, 0);
        p.after_read(t0, 10, State::Data);
        assert_eq!(p.deadline(), None);
        p.after_read(t0, 10, State::PartialLine(3));
        assert!(p.deadline().is_some(), "the command line limit stays");
    }
}
