//! qmail-smtpd: run by tcpserver with the client on fd 0 and fd 1.
//!
//! This file only wires the edges to the core: read the settings, then loop
//! feeding the session what fd 0 gives, writing its replies to fd 1 when
//! the input runs dry (RFC 2920), and acting on its requests to run
//! qmail-queue. Every protocol decision is in `qmail_smtpd::smtp`.

use std::time::{SystemTime, UNIX_EPOCH};

use std::ffi::OsString;

use qmail_smtpd::checkpassword::{self, Backend, Invocation};
use qmail_smtpd::control::{self, ControlLookups, Env};
use qmail_smtpd::io::fd::{FdTransport, IoError};
use qmail_smtpd::io::tls::TlsInfo;
use qmail_smtpd::io::transport::Transport;
use qmail_smtpd::log;
use qmail_smtpd::policy::Link;
use qmail_smtpd::queue::{self, Queue};
use qmail_smtpd::smtp::session::{Action, AuthResult, Output, Session, printable};

/// Read size: large enough that DATA moves in big steps.
const READ_BUF: usize = 64 * 1024;
/// Flush replies early if a client pipelines this much without reading.
const MAX_PENDING_REPLIES: usize = 64 * 1024;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == checkpassword::CHILD_FLAG) {
        return checkpassword::child_main(&args[1..]);
    }
    let invocation = match checkpassword::parse_invocation(&args, checkpassword::on_path) {
        Ok(i) => i,
        Err(e) => {
            log::line(&format!("warning: {e}"));
            Invocation::default()
        }
    };
    let env = Env::from_process();
    let settings = match control::load(&env, &invocation) {
        Ok(s) => s,
        Err(e) => {
            log::line(&format!("fatal: {e}"));
            let mut out = Vec::new();
            e.reply().render(&mut out);
            let mut t = FdTransport::new(std::time::Duration::from_secs(control::DEFAULT_TIMEOUT));
            let _ = t.write_all(&out);
            return 1;
        }
    };
    for w in &settings.warnings {
        log::line(&format!("warning: {w}"));
    }
    let mut transport = Transport::Plain(FdTransport::new(settings.timeout));
    let implicit_tls = settings.config.tls.link == Link::ImplicitTls;
    let mut session = Session::new(settings.config, settings.lookups);
    let mut tls_env = Vec::new();
    let auth = settings.backend.map(|b| (b, settings.auth_timeout));
    if implicit_tls {
        // SMTPS: the handshake comes before the greeting (RFC 8314).
        match start_tls(&mut session, &mut transport) {
            Some(info) => tls_env = queue_env(&info),
            None => return 1,
        }
    }
    serve(session, transport, &settings.queue_program, tls_env, auth)
}

/// TLS facts exported to qmail-queue, so queue filters can see them.
fn queue_env(info: &TlsInfo) -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        (
            "TLS_PROTOCOL".into(),
            Some(info.version.clone().into_bytes()),
        ),
        ("TLS_CIPHER".into(), Some(info.cipher.clone().into_bytes())),
    ]
}

/// Handshake on the link; on success tell the session. `None`: the
/// connection is over (the reason is logged).
fn start_tls(session: &mut Session<ControlLookups>, transport: &mut Transport) -> Option<TlsInfo> {
    let Some(config) = session.lookups().tls_config() else {
        log::line("TLS required before the greeting (SMTPS) but not available: closing");
        return None;
    };
    match transport.start_tls(config) {
        Ok(info) => {
            session.tls_started(format!("{} {}", info.version, info.cipher));
            Some(info)
        }
        Err(e) => {
            log::line(&format!("TLS handshake failed: {e}"));
            None
        }
    }
}

fn serve(
    mut session: Session<ControlLookups>,
    mut transport: Transport,
    queue_program: &std::path::Path,
    mut tls_env: Vec<(String, Option<Vec<u8>>)>,
    auth: Option<(Backend, std::time::Duration)>,
) -> i32 {
    let transport = &mut transport;
    let mut out = Output::default();
    let mut buf = vec![0u8; READ_BUF];
    let (mut pos, mut len) = (0usize, 0usize);
    let mut queue: Option<Queue> = None;
    session.greet(&mut out);

    loop {
        let action = if pos < len {
            let (n, action) = session.feed(&buf[pos..len], &mut out);
            pos += n;
            action
        } else {
            // Input ran dry: answer everything so far, then wait for more.
            if flush(transport, &mut out).is_err() {
                return abort(queue, 0);
            }
            match transport.read(&mut buf) {
                Ok(0) => session.eof(),
                Ok(n) => {
                    (pos, len) = (0, n);
                    continue;
                }
                Err(IoError::Timeout) => {
                    log::line("timeout reading from client");
                    session.timeout(&mut out)
                }
                Err(IoError::Io(e)) => {
                    log::line(&format!("read error: {e}"));
                    session.eof()
                }
            }
        };
        side_effects(&mut out);
        // Message bytes go to qmail-queue as they come, never piling up.
        if !out.body.is_empty() {
            if let Some(q) = &mut queue {
                q.write_body(&out.body);
            }
            out.body.clear();
        }
        if out.replies.len() >= MAX_PENDING_REPLIES && flush(transport, &mut out).is_err() {
            return abort(queue, 0);
        }
        match action {
            Action::NeedInput => {}
            Action::OpenQueue => {
                let mut env = tls_env.clone();
                env.extend(session.queue_env());
                let opened = match Queue::spawn(queue_program, &env) {
                    Ok(q) => {
                        let pid = q.pid();
                        queue = Some(q);
                        Ok(pid)
                    }
                    Err(e) => {
                        log::line(&format!("unable to run {}: {e}", queue_program.display()));
                        Err(queue::start_failure(&e))
                    }
                };
                session.queue_opened(opened, now(), &mut out);
                if let (Some(q), false) = (&mut queue, out.body.is_empty()) {
                    q.write_body(&out.body);
                }
                out.body.clear();
            }
            Action::FinishQueue => {
                let mut envelope = Vec::new();
                session.envelope(&mut envelope);
                let outcome = match queue.take() {
                    Some(q) => q.finish(&envelope),
                    None => queue::start_failure(&std::io::ErrorKind::Other.into()),
                };
                session.queue_closed(outcome, now(), &mut out);
            }
            Action::AbortQueue => {
                if let Some(q) = queue.take() {
                    q.abort();
                }
            }
            Action::StartTls => {
                if flush(transport, &mut out).is_err() {
                    return abort(queue, 0);
                }
                // CVE-2011-0411: what the client sent after STARTTLS in
                // clear is thrown away, never run inside TLS.
                if pos < len {
                    log::line(&format!(
                        "discarded {} bytes sent in clear after STARTTLS",
                        len - pos
                    ));
                    pos = len;
                }
                match start_tls(&mut session, transport) {
                    Some(info) => tls_env = queue_env(&info),
                    None => return abort(queue, 0),
                }
            }
            Action::CheckPassword => {
                let Some(creds) = session.take_credentials() else {
                    continue;
                };
                let (result, why) = match &auth {
                    Some((backend, timeout)) => checkpassword::check(backend, &creds, *timeout),
                    None => (AuthResult::TempFail, "no checkpassword configured".into()),
                };
                if !why.is_empty() {
                    log::line(&format!(
                        "checkpassword: user=\"{}\": {why}",
                        printable(&creds.user)
                    ));
                }
                let next = session.auth_checked(&creds.user, creds.mechanism, result, &mut out);
                side_effects(&mut out);
                if next == Action::Close {
                    return close(transport, &mut out, queue);
                }
            }
            Action::Close => return close(transport, &mut out, queue),
        }
    }
}

/// Log what the session asked to log; wait out an AUTH failure delay.
fn side_effects(out: &mut Output) {
    for l in out.log.drain(..) {
        log::line(&l);
    }
    if out.delay_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(out.delay_ms));
        out.delay_ms = 0;
    }
}

fn flush(transport: &mut Transport, out: &mut Output) -> Result<(), IoError> {
    if out.replies.is_empty() {
        return Ok(());
    }
    let r = transport.write_all(&out.replies);
    out.replies.clear();
    if let Err(e) = &r {
        log::line(&format!("write to client failed: {e}"));
    }
    r
}

/// Send the last replies and end the connection.
fn close(transport: &mut Transport, out: &mut Output, queue: Option<Queue>) -> i32 {
    let _ = flush(transport, out);
    transport.close();
    abort(queue, 0)
}

/// End the connection, making sure an unfinished message is not queued.
fn abort(queue: Option<Queue>, code: i32) -> i32 {
    if let Some(q) = queue {
        q.abort();
    }
    code
}
