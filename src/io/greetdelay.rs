//! Edge: the greeting delay's wait on the link, and the `554` and log
//! lines for a client that speaks first. What to wait for is decided by the
//! pure [`crate::core::greetdelay::from_env`].

use std::time::Instant;

use crate::core::greetdelay::GreetDelay;
use crate::io::fd::IoError;
use crate::io::log;
use crate::io::transport::Transport;
use crate::smtp::reply;

/// What happened during the wait.
#[derive(Debug)]
pub enum Outcome {
    /// The client stayed silent: greet it.
    Greet,
    /// It spoke first, `n` bytes thrown away; greet it (no `DROP_PRE_GREET`).
    Discarded(usize),
    /// It spoke first under `DROP_PRE_GREET`.
    EarlyTalker(usize),
    /// It closed the connection, or the link failed.
    Gone(String),
}

/// Wait on the link as `delay` says.
pub fn wait(link: &mut Transport, delay: &GreetDelay) -> Outcome {
    link.set_read_deadline(Some(Instant::now() + delay.wait));
    let mut buf = [0u8; 4096];
    let mut early = 0usize;
    let outcome = loop {
        match link.read(&mut buf) {
            Err(IoError::Timeout) if early > 0 => break Outcome::Discarded(early),
            Err(IoError::Timeout) => break Outcome::Greet,
            Ok(0) => break Outcome::Gone("client disconnected before the greeting".into()),
            Ok(n) if delay.drop => break Outcome::EarlyTalker(n),
            Ok(n) => early = early.saturating_add(n),
            Err(IoError::Io(e)) => break Outcome::Gone(format!("read error: {e}")),
        }
    };
    link.set_read_deadline(None);
    outcome
}

/// Wait; `Some(exit code)` when the connection is over (logged, with a
/// summary line like a served session's, `how=early_talker` or
/// `how=eof`).
pub fn run(delay: &GreetDelay, link: &mut Transport, summary: &str) -> Option<i32> {
    let started = Instant::now();
    let end = |how: &str, rejected: &str| {
        log::line(&format!(
            "end {summary}{rejected} duration={:.3}s how={how}",
            started.elapsed().as_secs_f64()
        ));
    };
    match wait(link, delay) {
        Outcome::Greet => None,
        Outcome::Discarded(n) => {
            log::line(&format!(
                "greeting delay: discarded {n} bytes sent before the greeting"
            ));
            None
        }
        Outcome::EarlyTalker(n) => {
            log::line(&format!(
                "greeting delay: client sent {n} bytes before the greeting: dropped (DROP_PRE_GREET)"
            ));
            let mut out = Vec::new();
            reply::PROTOCOL_VIOLATION.render(&mut out);
            let _ = link.write_all(&out);
            link.close();
            end("early_talker", " rejected=554x1");
            Some(1)
        }
        Outcome::Gone(why) => {
            log::line(&format!("greeting delay: {why}"));
            end("eof", "");
            Some(1)
        }
    }
}
