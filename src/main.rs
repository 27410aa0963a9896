//! qmail-smtpd: run by tcpserver with the client on fd 0 and fd 1.
//!
//! This file only wires the edges to the core: read the settings, then loop
//! feeding the session what fd 0 gives, writing its replies to fd 1 when
//! the input runs dry (RFC 2920), and acting on its requests to run
//! qmail-queue. Every protocol decision is in `qmail_smtpd::smtp` and
//! `qmail_smtpd::core`.

#![no_main]

// The musl build allocates with dlmalloc (std's allocator on wasm) rather
// than musl's mallocng, which maps and unmaps a page for nearly every size
// class it touches: 27 mmap and 20 munmap calls in one TLS session, 8 and 4
// in a plain one. With dlmalloc: 8 and 3, 5 and 1; a TLS session 2.91 ->
// 2.83 ms, a plain one 237 k -> 214 k instructions. glibc's malloc needs
// no replacement. C code (aws-lc, ring) still calls musl's malloc.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qmail_smtpd::cli::{check, explain};
use qmail_smtpd::core::certrelay::{self, CertRelay};
use qmail_smtpd::core::policy::Link;
use qmail_smtpd::core::slowclient::Pace;
use qmail_smtpd::core::spp;
use qmail_smtpd::io::checkpassword::{self, Backend, Invocation};
use qmail_smtpd::io::control::{self, ControlLookups, Env};
use qmail_smtpd::io::fd::{FdTransport, IoError};
use qmail_smtpd::io::log;
use qmail_smtpd::io::plugins::{self, Hooks};
use qmail_smtpd::io::policy_client::PolicyClient;
use qmail_smtpd::io::queue::{self, Queue};
use qmail_smtpd::io::tls::{self, TlsInfo};
use qmail_smtpd::io::transport::Transport;
use qmail_smtpd::smtp::session::{Action, AuthResult, End, Output, Session, printable};

/// Read size: large enough that DATA moves in big steps.
const READ_BUF: usize = 64 * 1024;
/// The first reads' size: commands are short, and zeroing 64 KiB up front
/// cost a plain session about 65 k instructions. A read that fills it
/// grows it to `READ_BUF` (DATA, or a client pipelining a lot).
const FIRST_READ_BUF: usize = 4 * 1024;
/// Flush replies early if a client pipelines this much without reading.
const MAX_PENDING_REPLIES: usize = 64 * 1024;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The C entry point, in place of Rust's `lang_start`: a process per
/// connection pays for every step of start-up, and Rust's (the main
/// thread's stack bounds, found by glibc reading /proc/self/maps, and an
/// alternate signal stack) was about a sixth of a plain session's
/// instructions. What of it matters here is done by `start_up`, and
/// `process::exit` still flushes std's buffers. The arguments are read
/// from `argv` here: `std::env::args_os` would only have them where the C
/// library hands argv to std's initialiser (glibc does, musl does not).
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    start_up();
    let count = usize::try_from(argc).unwrap_or(0);
    let args: Vec<OsString> = (1..count)
        .map(|i| {
            // SAFETY: the C start-up passes argc entries of argv, each a
            // NUL-terminated string that lives as long as the process.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            OsString::from(std::ffi::OsStr::from_bytes(arg.to_bytes()))
        })
        .collect();
    std::process::exit(run(args));
}

/// What Rust's start-up did that this program relies on: SIGPIPE ignored
/// (a write to a qmail-queue or checkpassword that exited must fail with
/// EPIPE, not kill us; children get the default back from
/// `std::process::Command` and `io::child::spawn`), and fds 0, 1 and 2 open (a closed one is
/// pointed at /dev/null, so a file opened later cannot take its number and
/// receive replies or log lines).
fn start_up() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler code, and no other thread
    // exists yet to race with the change.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    for fd in 0..=2 {
        // SAFETY: fds 0-2 are only probed here, never closed or owned.
        let probe = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if nix::fcntl::fcntl(probe, nix::fcntl::FcntlArg::F_GETFD) == Err(nix::errno::Errno::EBADF)
        {
            // open() returns the lowest free number: this closed one, as
            // the loop goes upwards. Leaked on purpose: it is fd `fd` now.
            if let Ok(f) = std::fs::OpenOptions::new()
                .read(fd == 0)
                .write(fd != 0)
                .open("/dev/null")
            {
                std::mem::forget(f);
            }
        }
    }
}

/// `args`: the command line after the program name.
fn run(args: Vec<OsString>) -> i32 {
    if args.first().is_some_and(|a| a == "--explain") {
        return explain_main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "--check") {
        return check_main(&args[1..]);
    }
    let invocation = match checkpassword::parse_invocation(&args, checkpassword::on_path) {
        Ok(i) => i,
        Err(e) => {
            log::line(&format!("warning: {e}"));
            Invocation::default()
        }
    };
    let mut env = Env::from_process();
    // Behind a load balancer: the real client comes in a PROXY header,
    // before anything else is read or said.
    let mut via = None;
    if qmail_smtpd::core::policy::number(env.get("PROXY_PROTOCOL")) > 0 {
        match proxied(&mut env) {
            Ok(balancer) => via = balancer,
            Err(code) => return code,
        }
    }
    // One listing of control/ for load and the plugin file alike.
    let index = control::ControlIndex::new(&control::qmailhome(&env).join("control"));
    let settings = control::load(&env, &invocation).and_then(|mut s| {
        // qmail-spp: nothing to read when control/ has no smtpplugins.
        let hooks = plugins::load(&env, &s.qmailhome)?;
        s.config.spp = hooks.as_ref().map_or(0, |h| h.plugins.mask());
        s.config.policy_service = env.get("POLICY_SERVICE").is_some_and(|v| !v.is_empty());
        Ok((s, hooks))
    });
    let (settings, hooks) = match settings {
        Ok(s) => s,
        Err(e) => {
            log::line(&format!("fatal: {e}"));
            let mut out = Vec::new();
            e.reply().render(&mut out);
            if let Some(mut t) = startup_link(&env) {
                let _ = t.write_all(&out);
                t.close();
            }
            return 1;
        }
    };
    drop(index);
    for w in &settings.warnings {
        log::line(&format!("warning: {w}"));
    }
    if nix::unistd::geteuid().is_root() {
        log::line("warning: serving a connection as root: run it as qmaild (tcpserver -u, -g)");
    }
    let mut transport = Transport::Plain(FdTransport::new(settings.timeout));
    let implicit_tls = settings.config.tls.link == Link::ImplicitTls;
    let mut session = Session::new(settings.config, settings.lookups);
    let mut tls_env = Vec::new();
    let auth = settings.backend.map(|b| (b, settings.auth_timeout));
    if implicit_tls {
        // SMTPS: the handshake comes before the greeting (RFC 8314).
        match start_tls(&mut session, &mut transport) {
            Some(env) => tls_env = env,
            None => return 1,
        }
    }
    // After the SMTPS handshake: the 554 for an early talker goes inside TLS.
    if let Some(delay) = qmail_smtpd::core::greetdelay::from_env(|n| env.get(n)) {
        if let Some(code) =
            qmail_smtpd::io::greetdelay::run(&delay, &mut transport, &session.summary())
        {
            return code;
        }
    }
    let conn = Conn {
        transport,
        out: Output::default(),
        transcript: session.config().transcript,
        rejected: BTreeMap::new(),
        via,
    };
    serve(
        &mut session,
        conn,
        &settings.queue_program,
        tls_env,
        auth,
        settings.timeout,
        Checks {
            hooks: hooks.as_ref(),
            policy: PolicyClient::from_env(&env),
        },
    )
}

/// Read the PROXY header and make the environment describe the real
/// client. `Ok(Some(balancer))` when the addresses changed; `Err(exit
/// code)` when the connection is over (logged once; the client hears
/// nothing, or 421 when `PROXY_RULES` cannot be read).
fn proxied(env: &mut Env) -> Result<Option<String>, i32> {
    use qmail_smtpd::io::proxy::{self, Refusal, Verdict};
    let balancer = env
        .get("TCPREMOTEIP")
        .map_or_else(|| "unknown".into(), printable);
    let timeout = control::timeout(env);
    match proxy::accept(env, timeout) {
        Ok(Verdict::Serve { client: Some(_) }) => Ok(Some(balancer)),
        Ok(Verdict::Serve { client: None }) => Ok(None),
        Ok(Verdict::Refused(Refusal::Deny { client, key })) => {
            log::line(&format!(
                "PROXY: remote={client} via={balancer}: denied by the rule {key:?} of PROXY_RULES: closing"
            ));
            Err(0)
        }
        Ok(Verdict::Refused(Refusal::RulesUnreadable(why))) => {
            log::line(&format!("fatal: unable to read PROXY_RULES {why}"));
            let mut out = Vec::new();
            qmail_smtpd::smtp::reply::CONTROL_UNREADABLE.render(&mut out);
            if let Some(mut t) = startup_link(env) {
                let _ = t.write_all(&out);
                t.close();
            }
            Err(1)
        }
        Err(e) => {
            log::line(&format!(
                "PROXY: via={balancer}: no valid header ({e}): closing without a greeting"
            ));
            Err(1)
        }
    }
}

/// The outside checks of this connection: qmail-spp plugins and a Postfix
/// policy service.
struct Checks<'a> {
    hooks: Option<&'a Hooks>,
    policy: Option<PolicyClient>,
}

/// The link for a reply when the settings could not be loaded. Under SMTPS
/// the client speaks TLS first, so the reply goes inside a handshake made
/// with the certificate alone (no cipher list: that may be what failed);
/// with no usable certificate nothing can be said, and `None` closes the
/// connection silently rather than send clear text to a TLS client.
fn startup_link(env: &Env) -> Option<Transport> {
    let timeout = Duration::from_secs(control::DEFAULT_TIMEOUT);
    let mut t = Transport::Plain(FdTransport::new(timeout));
    let smtps =
        env.get("SMTPS").is_some() && qmail_smtpd::core::policy::number(env.get("SSL")) == 0;
    if !smtps {
        return Some(t);
    }
    let (cert, key) = control::tls_paths(env, &control::qmailhome(env).join("control"));
    let config = match tls::server_config(&cert, key.as_deref(), None, None) {
        Ok((config, _)) => config,
        Err(e) => {
            log::line(&format!(
                "SMTPS: TLS not available either ({e}): closing without a reply"
            ));
            return None;
        }
    };
    match t.start_tls(config, &|_| None) {
        Ok(_) => Some(t),
        Err(e) => {
            log::line(&format!("TLS handshake failed: {e}"));
            None
        }
    }
}

/// `qmail-smtpd --explain [--rules FILE.cdb --ip A.B.C.D [--host NAME]]
/// [--format=json] [hostname] [checkpassword subprogram...]`.
fn explain_main(args: &[OsString]) -> i32 {
    let (opts, rest) = match explain::parse_args(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("qmail-smtpd --explain: {e}");
            eprintln!(
                "usage: qmail-smtpd --explain [--rules FILE.cdb --ip A.B.C.D [--host NAME] [--via BALANCER]] [--rcpt ADDR [--helo NAME] [--from ADDR]] [--format=json] [hostname] [checkpassword subprogram ...]"
            );
            return 2;
        }
    };
    let invocation = match checkpassword::parse_invocation(&rest, checkpassword::on_path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("qmail-smtpd --explain: warning: {e}");
            Invocation::default()
        }
    };
    let report = explain::explain(Env::from_process(), &invocation, &opts);
    print!(
        "{}",
        if opts.json {
            report.json()
        } else {
            report.text()
        }
    );
    0
}

/// `qmail-smtpd --check [--user NAME] [hostname] [checkpassword
/// subprogram...]`: exit 1 if anything is an error.
fn check_main(args: &[OsString]) -> i32 {
    let (opts, rest) = match check::parse_args(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("qmail-smtpd --check: {e}");
            eprintln!(
                "usage: qmail-smtpd --check [--user NAME] [--rules FILE.cdb] [hostname] [checkpassword subprogram ...]"
            );
            return 2;
        }
    };
    let mut findings = Vec::new();
    let invocation = match checkpassword::parse_invocation(&rest, checkpassword::on_path) {
        Ok(i) => i,
        Err(e) => {
            findings.push(check::Finding {
                level: check::Level::Error,
                text: e,
            });
            Invocation::default()
        }
    };
    let now = i64::try_from(now()).unwrap_or(i64::MAX);
    findings.extend(check::check(&Env::from_process(), &invocation, &opts, now));
    let mut worst = check::Level::Ok;
    for f in &findings {
        println!("{}: {}", f.level, f.text);
        worst = worst.max(f.level);
    }
    i32::from(worst == check::Level::Error)
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

/// Handshake on the link; on success tell the session, and return the
/// TLS facts for qmail-queue's environment. `None`: the connection is
/// over (the reason is logged).
fn start_tls(
    session: &mut Session<ControlLookups>,
    transport: &mut Transport,
) -> Option<Vec<(String, Option<Vec<u8>>)>> {
    let lookups = session.lookups();
    let Some(config) = lookups.tls_config() else {
        log::line("TLS required before the greeting (SMTPS) but not available: closing");
        return None;
    };
    match transport.start_tls(config, &|name| lookups.sni_config(name)) {
        Ok(info) => {
            session.tls_started(format!("{} {}", info.version, info.cipher));
            let mut env = queue_env(&info);
            if let Some((relay, subject)) = client_certificate(session.lookups()) {
                if let CertRelay::Granted(email) = &relay {
                    env.push(("TLS_CLIENT_EMAIL".into(), Some(email.clone())));
                }
                if let Some(cn) = subject {
                    session.client_certificate_subject(cn);
                }
                session.client_certificate(relay);
            }
            Some(env)
        }
        Err(e) => {
            log::line(&format!("TLS handshake failed: {e}"));
            None
        }
    }
}

/// When a client certificate was asked for: what it earns (logged once),
/// and the verified certificate's subject commonName.
fn client_certificate(lookups: &ControlLookups) -> Option<(CertRelay, Option<Vec<u8>>)> {
    let relay = lookups.client_relay()?;
    let outcome = relay.auth.outcome();
    let decision = certrelay::decide(&outcome, &relay.tlsclients);
    let subject = match &outcome {
        certrelay::ClientCert::Verified(leaf) => qmail_smtpd::core::x509::subject_cn(leaf),
        _ => None,
    };
    log::line(&match &decision {
        CertRelay::Granted(email) => format!(
            "client certificate: relaying allowed for \"{}\"",
            printable(email)
        ),
        refused => format!("client certificate: no relaying: {}", refused.reason()),
    });
    Some((decision, subject))
}

/// The connection's edge state: the link, the pending output, and what the
/// summary line needs.
struct Conn {
    transport: Transport,
    out: Output,
    transcript: bool,
    /// Error replies sent, by code.
    rejected: BTreeMap<u16, u32>,
    /// The load balancer the client came through (PROXY protocol).
    via: Option<String>,
}

impl Conn {
    /// Write the pending replies (one write), logging them under
    /// `SMTPD_TRANSCRIPT` and counting the refusals.
    fn flush(&mut self) -> Result<(), IoError> {
        if self.out.replies.is_empty() {
            return Ok(());
        }
        for line in self
            .out
            .replies
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if self.transcript {
                log::line(&format!("> {}", printable(line)));
            }
            if let (Some(code), Some(b' ')) = (reply_code(line), line.get(3)) {
                if code >= 400 {
                    *self.rejected.entry(code).or_default() += 1;
                }
            }
        }
        let r = self.transport.write_all(&self.out.replies);
        self.out.replies.clear();
        if let Err(e) = &r {
            log::line(&format!("write to client failed: {e}"));
        }
        r
    }
}

fn reply_code(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Serve the connection, then log its one summary line.
fn serve(
    session: &mut Session<ControlLookups>,
    mut conn: Conn,
    queue_program: &std::path::Path,
    tls_env: Vec<(String, Option<Vec<u8>>)>,
    auth: Option<(Backend, Duration)>,
    timeout: Duration,
    checks: Checks,
) -> i32 {
    let started = Instant::now();
    let (code, edge_end) = dialogue(
        session,
        &mut conn,
        queue_program,
        tls_env,
        auth,
        timeout,
        checks,
    );
    let how = session.end().map_or(edge_end, End::name);
    let rejected: Vec<String> = conn
        .rejected
        .iter()
        .map(|(code, n)| format!("{code}x{n}"))
        .collect();
    log::line(&format!(
        "end {}{}{} duration={:.3}s how={how}",
        session.summary(),
        if rejected.is_empty() {
            String::new()
        } else {
            format!(" rejected={}", rejected.join(","))
        },
        conn.via
            .as_ref()
            .map_or_else(String::new, |b| format!(" via={b}")),
        started.elapsed().as_secs_f64(),
    ));
    code
}

/// The SMTP dialogue. Returns the exit code and, for an end the session
/// did not decide itself, why the edge ended it.
fn dialogue(
    session: &mut Session<ControlLookups>,
    conn: &mut Conn,
    queue_program: &std::path::Path,
    mut tls_env: Vec<(String, Option<Vec<u8>>)>,
    auth: Option<(Backend, Duration)>,
    queue_timeout: Duration,
    mut checks: Checks,
) -> (i32, &'static str) {
    let mut buf = vec![0u8; FIRST_READ_BUF];
    let (mut pos, mut len) = (0usize, 0usize);
    let mut queue: Option<Queue> = None;
    // An action the session returned from an answer, to act on next.
    let mut next = Some(session.connect(&mut conn.out));
    // Slow clients: a whole command line, and DATA at a minimum rate.
    let mut pace = Pace::new(queue_timeout, session.config().min_data_rate);
    let mut last_read: Option<(Instant, usize)> = None;

    loop {
        let action = if let Some(a) = next.take() {
            a
        } else if pos < len {
            let (n, action) = session.feed(&buf[pos..len], &mut conn.out);
            pos += n;
            action
        } else {
            // Input ran dry: answer everything so far, then wait for more.
            if conn.flush().is_err() {
                return (abort(queue, 0), "write_error");
            }
            // Everything read was consumed: if the last read filled the
            // buffer, more is coming in bulk.
            if len == buf.len() && buf.len() < READ_BUF {
                buf.resize(READ_BUF, 0);
            }
            let (at, n) = last_read.take().unwrap_or((Instant::now(), 0));
            pace.after_read(at, n, session.pace_state());
            let limit = pace.deadline();
            conn.transport.set_read_deadline(limit.map(|(d, _)| d));
            match conn.transport.read(&mut buf) {
                Ok(0) => session.eof(),
                Ok(n) => {
                    (pos, len) = (0, n);
                    last_read = Some((Instant::now(), n));
                    continue;
                }
                Err(IoError::Timeout) => {
                    // poll() may wake a hair early.
                    let near = Instant::now() + Duration::from_millis(10);
                    match limit.filter(|(d, _)| near >= *d) {
                        Some((_, why)) => {
                            log::line(&format!("client too slow: {}", why.describe()));
                        }
                        None => log::line("timeout reading from client"),
                    }
                    session.timeout(&mut conn.out)
                }
                Err(IoError::Io(e)) => {
                    log::line(&format!("read error: {e}"));
                    session.eof()
                }
            }
        };
        side_effects(&mut conn.out);
        // Message bytes go to qmail-queue as they come, never piling up.
        if !conn.out.body.is_empty() {
            if let Some(q) = &mut queue {
                q.write_body(&conn.out.body);
            }
            conn.out.body.clear();
        }
        if conn.out.replies.len() >= MAX_PENDING_REPLIES && conn.flush().is_err() {
            return (abort(queue, 0), "write_error");
        }
        match action {
            Action::NeedInput => {}
            Action::OpenQueue => {
                let mut env = tls_env.clone();
                env.extend(session.queue_env());
                // jms1: AUTH_SET_QMAILQUEUE picks another queue program.
                let program = match env.iter().rev().find(|(k, _)| k == "QMAILQUEUE") {
                    Some((_, Some(q))) if !q.is_empty() => {
                        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(q))
                    }
                    _ => queue_program.to_path_buf(),
                };
                let queue_program = program.as_path();
                let opened = match Queue::spawn(queue_program, &env, queue_timeout) {
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
                session.queue_opened(opened, now(), &mut conn.out);
                if let (Some(q), false) = (&mut queue, conn.out.body.is_empty()) {
                    q.write_body(&conn.out.body);
                }
                conn.out.body.clear();
            }
            Action::FinishQueue => {
                let mut envelope = Vec::new();
                session.envelope(&mut envelope);
                let outcome = match queue.take() {
                    Some(q) => q.finish(&envelope),
                    None => queue::start_failure(&std::io::ErrorKind::Other.into()),
                };
                session.queue_closed(outcome, now(), &mut conn.out);
            }
            Action::AbortQueue => {
                if let Some(q) = queue.take() {
                    q.abort();
                }
            }
            Action::StartTls => {
                if conn.flush().is_err() {
                    return (abort(queue, 0), "write_error");
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
                match start_tls(session, &mut conn.transport) {
                    Some(env) => tls_env = env,
                    None => return (abort(queue, 0), "tls_failed"),
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
                        "checkpassword: {}: {why}",
                        qmail_smtpd::smtp::auth::log_user(&creds.user)
                    ));
                }
                next =
                    Some(session.auth_checked(&creds.user, creds.mechanism, result, &mut conn.out));
            }
            Action::RunHook(hook) => {
                let mut env = tls_env.clone();
                env.extend(session.hook_env());
                let run = match checks.hooks {
                    Some(h) => h.run(hook, &env),
                    None => spp::Run::new(hook),
                };
                next = Some(session.hook_done(&run, &mut conn.out));
            }
            Action::AskPolicy => {
                let verdict = match &mut checks.policy {
                    Some(p) => p.ask(session.policy_request(), &tls_env),
                    None => qmail_smtpd::core::policy_delegation::decide(
                        qmail_smtpd::core::policy_delegation::DEFAULT_FAILURE_ACTION,
                    ),
                };
                next = Some(session.policy_answered(verdict, &mut conn.out));
            }
            Action::RcptCheck => {
                let checks = &session.config().rcpt_checks;
                let outcome = match &checks.rcptcheck {
                    Some(program) => qmail_smtpd::io::rcptcheck::run(
                        program,
                        &session.rcptcheck_env(),
                        Duration::from_secs(checks.rcptcheck_timeout),
                    ),
                    None => qmail_smtpd::core::rcptcheck::Outcome {
                        exit: qmail_smtpd::core::rcptcheck::Exit::NotRun,
                        fd4: Vec::new(),
                    },
                };
                next = Some(session.rcpt_checked(&outcome, &mut conn.out));
            }
            Action::Close => return (close(conn, queue), "closed"),
        }
    }
}

/// Log what the session asked to log; wait out an AUTH failure delay.
fn side_effects(out: &mut Output) {
    for l in out.log.drain(..) {
        log::line(&l);
    }
    if out.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(out.delay_ms));
        out.delay_ms = 0;
    }
}

/// Send the last replies and end the connection.
fn close(conn: &mut Conn, queue: Option<Queue>) -> i32 {
    let _ = conn.flush();
    conn.transport.close();
    abort(queue, 0)
}

/// End the connection, making sure an unfinished message is not queued.
fn abort(queue: Option<Queue>, code: i32) -> i32 {
    if let Some(q) = queue {
        q.abort();
    }
    code
}
