//! The SMTP session state machine: bytes in, replies and actions out.
//!
//! [`Session::feed`] takes whatever the transport read and returns how much
//! it consumed and what the edge must do next ([`Action`]). Replies are
//! appended to [`Output::replies`] in order (RFC 2920: the edge flushes them
//! when its input runs dry), and message bytes for qmail-queue to
//! [`Output::body`]. The session never touches a file, a socket, a clock or
//! a child process: those facts come back in through [`Session::queue_opened`]
//! and [`Session::queue_closed`], so a whole session is a pure function of
//! its inputs and can be table-tested and fuzzed.

use std::collections::HashSet;

use memchr::memchr;

use super::command::{self, Command, MAX_COMMAND_LINE};
use super::data::{DataError, DataScanner, MAX_HOPS, Scan};
use super::received::{ReceivedInfo, received};
use super::reply::{self, Reply, render_line};
use crate::core::certrelay::CertRelay;
use crate::core::policy::{AuthPolicy, Link, LinkState, Policy, TlsPolicy};
use crate::core::rcpt_checks::{self, HeloFlags, RcptChecks, RcptCounters};
use crate::core::spp::{self, Hook, Later};
use crate::smtp::auth::{self, Credentials, Exchange, Failure, Mechanism, Step};

/// Default number of protocol errors (500, 501, 502, 503, 555) before the
/// session is ended with 421.
pub const DEFAULT_MAX_ERRORS: u32 = 20;
/// Recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100).
pub const DEFAULT_MAX_RCPTS: usize = 1000;
/// AUTH failures before the session is ended with 421.
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 3;
/// The n-th AUTH failure is answered after n times this many milliseconds.
pub const DEFAULT_AUTH_FAILURE_DELAY_MS: u64 = 1000;

/// A look-up could not be answered (a control file exists but is unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupError;

/// Look-ups the edge answers: things that need a file or the kernel.
pub trait Lookups {
    /// Is `domain` (lower-cased) in `morercpthosts.cdb`? `Err` if the file
    /// exists but cannot be read.
    fn more_rcpthosts(&self, domain: &[u8]) -> Result<bool, LookupError>;
    /// Is this IPv4 address one of this host's own (qmail's `ipme`)?
    fn is_local_ip(&self, ip: [u8; 4]) -> bool;
    /// Can TLS be offered (a usable certificate)? Asked only when STARTTLS
    /// would be advertised or is requested, so the edge can load the
    /// certificate lazily, once.
    fn tls_available(&self) -> bool;
    /// Is TLS really usable (the key loaded and matching)? Asked when the
    /// client sends STARTTLS, before the 220, so a late failure is still a
    /// 454 and not a broken connection.
    fn tls_ready(&self) -> bool {
        self.tls_available()
    }
    /// A fresh CRAM-MD5 challenge, `<unique@hostname>`, never repeated.
    fn cram_challenge(&self) -> Vec<u8>;
    /// jms1's `VALIDRCPTTO_CDB`: the value stored under `key`, if any.
    fn validrcptto(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        Ok(None)
    }
    /// sagredo's `morevalidrcptto.cdb`: is `key` in it?
    fn more_validrcptto(&self, _key: &[u8]) -> Result<bool, LookupError> {
        Ok(false)
    }
}

/// A set of names matched case-insensitively (rcpthosts, badmailfrom).
#[derive(Debug, Default, Clone)]
pub struct NameSet(HashSet<Vec<u8>>);

impl NameSet {
    pub fn new<I: IntoIterator<Item = Vec<u8>>>(items: I) -> NameSet {
        NameSet(
            items
                .into_iter()
                .map(|mut v| {
                    v.make_ascii_lowercase();
                    v
                })
                .collect(),
        )
    }

    /// `key` must already be lower-cased.
    pub fn contains_lower(&self, key: &[u8]) -> bool {
        self.0.contains(key)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.0.contains(&key.to_ascii_lowercase())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Everything the session needs to know, read once at connect time.
#[derive(Debug, Clone)]
pub struct Config {
    /// `smtpgreeting`, else `me`: the text after `220 `.
    pub greeting: Vec<u8>,
    /// `localiphost`, else `me`: replaces `[a.b.c.d]` of a local address.
    pub localiphost: Option<Vec<u8>>,
    /// `rcpthosts`; `None` when the file does not exist (we fail closed).
    pub rcpthosts: Option<NameSet>,
    /// `badmailfrom`: addresses, `@domain` entries and (qregex) regular
    /// expressions.
    pub badmailfrom: rcpt_checks::AddrList,
    /// `databytes` / `DATABYTES`; 0 means no limit.
    pub databytes: u64,
    /// `RELAYCLIENT`: when set, recipients skip rcpthosts and get it appended.
    pub relayclient: Option<Vec<u8>>,
    pub remote_ip: Vec<u8>,
    pub remote_host: Vec<u8>,
    pub remote_info: Option<Vec<u8>>,
    pub local_host: Vec<u8>,
    pub max_errors: u32,
    pub max_rcpts: usize,
    /// What the TLS switches (SSL, SMTPS, DENY_TLS, FORCE_TLS…) decided.
    pub tls: TlsPolicy,
    /// What the AUTH switches (SMTPAUTH, REQUIRE_AUTH…) decided.
    pub auth: AuthPolicy,
    pub max_auth_failures: u32,
    pub auth_failure_delay_ms: u64,
    /// `AUTH_SET_<VAR>` / `AUTH_UNSET_<VAR>`: applied after a successful
    /// AUTH (value `None` unsets).
    pub auth_env: Vec<(String, Option<Vec<u8>>)>,
    /// `SMTPD_TRANSCRIPT`: log every command line (AUTH data redacted).
    pub transcript: bool,
    /// qmail-spp: one bit per hook with plugins ([`Hook::bit`]); 0 when
    /// `smtpplugins` is absent or `NOSPP` is set.
    pub spp: u8,
    /// `POLICY_SERVICE` is set: ask it about every recipient that passed
    /// our own checks.
    pub policy_service: bool,
    /// The combined patches' recipient checks (validrcptto…).
    pub rcpt_checks: RcptChecks,
    /// `SMTPD_MIN_DATA_RATE`: bytes/s DATA must keep after the first
    /// `timeoutsmtpd` (0: off). Enforced by the edge (src/main.rs, with src/core/slowclient.rs).
    pub min_data_rate: u64,
}

impl Config {
    /// A configuration with qmail's defaults for the given greeting.
    pub fn new(greeting: &[u8]) -> Config {
        Config {
            greeting: greeting.to_vec(),
            localiphost: Some(greeting.to_vec()),
            rcpthosts: Some(NameSet::default()),
            badmailfrom: rcpt_checks::AddrList::default(),
            databytes: 0,
            relayclient: None,
            remote_ip: b"unknown".to_vec(),
            remote_host: b"unknown".to_vec(),
            remote_info: None,
            local_host: b"unknown".to_vec(),
            max_errors: DEFAULT_MAX_ERRORS,
            max_rcpts: DEFAULT_MAX_RCPTS,
            tls: TlsPolicy {
                link: Link::Plain,
                starttls: true,
                force_tls: false,
            },
            auth: AuthPolicy::OFF,
            max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
            auth_failure_delay_ms: DEFAULT_AUTH_FAILURE_DELAY_MS,
            auth_env: Vec::new(),
            transcript: false,
            spp: 0,
            policy_service: false,
            rcpt_checks: RcptChecks::default(),
            min_data_rate: crate::core::slowclient::DEFAULT_MIN_DATA_RATE,
        }
    }
}

/// Buffers the edge drains after every call.
#[derive(Debug, Default)]
pub struct Output {
    /// Rendered replies, in order, for the client.
    pub replies: Vec<u8>,
    /// Message bytes (LF line endings) for qmail-queue's fd 0.
    pub body: Vec<u8>,
    /// Lines for the log (stderr). Client text in them is escaped.
    pub log: Vec<String>,
    /// Wait this long before sending the replies (AUTH failures).
    pub delay_ms: u64,
}

/// What the edge must do after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// All input consumed; read more (flushing replies first if nothing is
    /// left to process).
    NeedInput,
    /// Start qmail-queue, then call [`Session::queue_opened`].
    OpenQueue,
    /// The message is complete and acceptable: write out `body`, close
    /// qmail-queue's fd 0, write [`Session::envelope`] to its fd 1, close it,
    /// wait, then call [`Session::queue_closed`].
    FinishQueue,
    /// The message is refused (reply already given): close qmail-queue's
    /// pipes without an envelope so it stores nothing, reap it, go on.
    AbortQueue,
    /// The client asked for STARTTLS and got 220: hand the link to TLS.
    StartTls,
    /// Run checkpassword on [`Session::take_credentials`], then call
    /// [`Session::auth_checked`].
    CheckPassword,
    /// Run the RCPTCHECK program with [`Session::rcptcheck_env`], then
    /// call [`Session::rcpt_checked`].
    RcptCheck,
    /// Flush replies and end the connection (abort qmail-queue if open).
    Close,
    /// Run the qmail-spp plugins of this hook with [`Session::hook_env`]
    /// added to the environment, then call [`Session::hook_done`].
    RunHook(Hook),
    /// Ask the policy service about [`Session::policy_request`], then
    /// call [`Session::policy_answered`].
    AskPolicy,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    Eof,
    Timeout,
    TooManyErrors,
    TooManyAuthFailures,
    BareLineEnding,
    ControlUnreadable,
    /// A qmail-spp plugin said `R` or `D`.
    Plugin,
    TooManyInvalidRcpts,
    /// RCPTCHECK answered with a 421 (exit 113: over a limit).
    RcptCheck,
}

impl End {
    pub fn name(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::Eof => "eof",
            End::Timeout => "timeout",
            End::TooManyErrors => "too_many_errors",
            End::TooManyAuthFailures => "too_many_auth_failures",
            End::BareLineEnding => "bare_line_ending",
            End::ControlUnreadable => "control_unreadable",
            End::Plugin => "spp",
            End::TooManyInvalidRcpts => "too_many_invalid_rcpts",
            End::RcptCheck => "rcptcheck",
        }
    }
}

/// What checkpassword said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Accepted,
    /// Wrong credentials (exit 1 or 2), or a login as root.
    Rejected,
    /// Exit 111, a crash or a timeout: `454`.
    TempFail,
}

/// How qmail-queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExit {
    Exited(i32),
    Signaled,
    /// It could not be started or waited for.
    Unknown,
    /// It stopped reading or did not exit within `timeoutsmtpd`, and was
    /// killed.
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOutcome {
    pub exit: QueueExit,
    /// Our own write to its pipes failed (it exited early).
    pub write_failed: bool,
}

/// The reply qmail-smtpd gives for a qmail-queue result other than success
/// (qmail.c `qmail_close`); `None` means queued.
pub fn queue_reply(outcome: QueueOutcome) -> Option<Reply> {
    let code = match outcome.exit {
        QueueExit::Signaled => return Some(reply::QQ_CRASHED),
        QueueExit::Unknown => return Some(reply::QQ_TEMP_PROBLEM),
        QueueExit::TimedOut => return Some(reply::QQ_TIMEOUT),
        QueueExit::Exited(c) => c,
    };
    Some(match code {
        0 if outcome.write_failed => reply::QQ_READ_ERROR,
        0 => return None,
        // 115: qmail's qmail_close takes it as 11 ("compatibility").
        11 | 115 => reply::QQ_ADDRESS_TOO_LONG,
        31 => reply::QQ_PERM_REJECTED,
        51 => reply::QQ_OUT_OF_MEMORY,
        52 => reply::QQ_TIMEOUT,
        53 => reply::QQ_WRITE_ERROR,
        54 => reply::QQ_READ_ERROR,
        55 => reply::QQ_CONFIG,
        56 => reply::QQ_NETWORK,
        61 => reply::QQ_HOME,
        62..=66 => reply::QQ_QUEUE_FILES,
        71 => reply::QQ_TEMP_REJECTED,
        72 => reply::QQ_REMOTE_TIMEOUT,
        73 => reply::QQ_REMOTE_REJECTED,
        74 => reply::QQ_COMMUNICATION,
        81 | 91 => reply::QQ_BUG,
        120 => reply::QQ_EXEC,
        c if (11..=40).contains(&c) => reply::QQ_PERM_PROBLEM,
        _ => reply::QQ_TEMP_PROBLEM,
    })
}

#[derive(Debug, Default)]
struct Transaction {
    /// `Some` once MAIL was accepted.
    sender: Option<Vec<u8>>,
    bad_sender: bool,
    rcpts: Vec<Vec<u8>>,
    rcpt_attempted: bool,
    /// `SIZE=` of MAIL, for the policy service.
    size: u64,
    /// Header lines a policy service asked for (`PREPEND`).
    prepend: Vec<u8>,
    /// `MAIL … SMTPUTF8` (RFC 6531).
    smtputf8: bool,
}

enum Phase {
    Command,
    /// DATA accepted, waiting for the edge to start qmail-queue.
    OpeningQueue,
    Data(DataScanner),
    /// Waiting for the edge to report qmail-queue's exit.
    ClosingQueue,
    Closed,
}

pub struct Session<L> {
    cfg: Config,
    lookups: L,
    phase: Phase,
    helo: Option<Vec<u8>>,
    esmtp: bool,
    txn: Transaction,
    errors: u32,
    /// A command line split across reads (at most MAX_COMMAND_LINE bytes).
    partial: Vec<u8>,
    /// The current line is over the limit: discard up to its LF.
    overlong: bool,
    queue_pid: u32,
    /// The TLS session we run, as "TLSv1.3 TLS13_AES_256_GCM_SHA384".
    tls: Option<String>,
    /// Messages accepted by qmail-queue: (qp, bytes).
    messages: Vec<(u32, u64)>,
    /// Size of the message being queued.
    message_bytes: u64,
    end: Option<End>,
    /// The authenticated user and mechanism.
    auth_user: Option<(Vec<u8>, Mechanism)>,
    auth_failures: u32,
    /// An AUTH exchange waiting for the client's next line.
    exchange: Option<Exchange>,
    /// The mechanism of the exchange under way (for the log).
    auth_mech_started: Option<Mechanism>,
    /// Credentials waiting for the edge's checkpassword.
    credentials: Option<Credentials>,
    /// `databytes` and `RELAYCLIENT` as at connect time, restored when an
    /// AUTH (and what its `AUTH_SET_` changed) is forgotten.
    connect_settings: (u64, Option<Vec<u8>>),
    /// qmail-spp: what plugins set up, and that state as it was after the
    /// greeting (STARTTLS goes back to it).
    spp: spp::State,
    spp_connected: spp::State,
    /// The command waiting for [`Action::RunHook`]'s verdict.
    hook: Option<Pending>,
    /// Transactions begun (MAIL accepted): the policy service's `instance`.
    transactions: u32,
    /// Counters of the recipient checks, per connection.
    rcpt_counters: RcptCounters,
    /// What `badhelo`/`badhelonorelay` said of the last HELO/EHLO name.
    helo_flags: HeloFlags,
    /// A recipient waiting for RCPTCHECK: the address, whether it passed
    /// rcpthosts (`RCPTHOSTS=1`) and a validrcptto list (`RCPTFOUND=1`).
    rcptcheck_pending: Option<(Vec<u8>, bool, bool)>,
    /// What a client certificate earned, when one was asked for.
    cert_relay: Option<CertRelay>,
    /// The verified client certificate's subject commonName, for the
    /// policy service's `ccert_subject`.
    ccert_subject: Option<Vec<u8>>,
}

/// A command held while its hook's plugins run.
#[derive(Debug)]
enum Pending {
    Connection,
    Helo(Vec<u8>, bool),
    Mail(Vec<u8>),
    Rcpt(Vec<u8>),
    Pass(Vec<u8>),
    Data,
    Auth(Vec<u8>, Mechanism),
    Policy(Vec<u8>),
}

impl<L: Lookups> Session<L> {
    pub fn new(cfg: Config, lookups: L) -> Session<L> {
        Session {
            connect_settings: (cfg.databytes, cfg.relayclient.clone()),
            cfg,
            lookups,
            phase: Phase::Command,
            helo: None,
            esmtp: false,
            txn: Transaction::default(),
            errors: 0,
            partial: Vec::new(),
            overlong: false,
            queue_pid: 0,
            tls: None,
            messages: Vec::new(),
            message_bytes: 0,
            end: None,
            auth_user: None,
            auth_failures: 0,
            exchange: None,
            auth_mech_started: None,
            credentials: None,
            spp: spp::State::default(),
            spp_connected: spp::State::default(),
            hook: None,
            transactions: 0,
            rcpt_counters: RcptCounters::default(),
            helo_flags: HeloFlags::default(),
            rcptcheck_pending: None,
            cert_relay: None,
            ccert_subject: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn lookups(&self) -> &L {
        &self.lookups
    }

    /// The `220` greeting.
    pub fn greet(&self, out: &mut Output) {
        let mut text = self.cfg.greeting.clone();
        text.extend_from_slice(b" ESMTP");
        render_line(&mut out.replies, 220, false, None, &text);
    }

    /// Consume input; see [`Action`]. Returns the bytes consumed.
    pub fn feed(&mut self, input: &[u8], out: &mut Output) -> (usize, Action) {
        let mut pos = 0;
        while pos < input.len() {
            match &mut self.phase {
                Phase::Data(scanner) => {
                    let (n, result) = scanner.feed(&input[pos..], &mut out.body);
                    pos += n;
                    match result {
                        Ok(Scan::NeedMore) => {}
                        Ok(Scan::End) => return (pos, self.end_of_data(out)),
                        Err(e) => {
                            let r = match e {
                                DataError::BareLf => reply::BARE_LF,
                                DataError::BareCr => reply::BARE_CR,
                            };
                            r.render(&mut out.replies);
                            return (pos, self.close(End::BareLineEnding));
                        }
                    }
                }
                Phase::Command => {
                    let rest = &input[pos..];
                    let Some(nl) = memchr(b'\n', rest) else {
                        self.keep_partial(rest);
                        return (input.len(), Action::NeedInput);
                    };
                    pos += nl + 1;
                    let action = if self.overlong || self.partial.len() + nl + 1 > MAX_COMMAND_LINE
                    {
                        self.overlong = false;
                        self.partial.clear();
                        // An AUTH response that long is no response: the
                        // exchange ends with the error (RFC 4954 §6).
                        let reply = if self.exchange.take().is_some() {
                            reply::AUTH_LINE_TOO_LONG
                        } else {
                            reply::LINE_TOO_LONG
                        };
                        self.error(reply, out)
                    } else if self.partial.is_empty() {
                        self.line(&rest[..nl], out)
                    } else {
                        let mut line = std::mem::take(&mut self.partial);
                        line.extend_from_slice(&rest[..nl]);
                        let action = self.line(&line, out);
                        line.clear();
                        self.partial = line;
                        action
                    };
                    if action != Action::NeedInput {
                        return (pos, action);
                    }
                }
                // Input while the edge owes us an answer cannot happen in a
                // correct edge; after Close nothing more is read.
                Phase::OpeningQueue | Phase::ClosingQueue | Phase::Closed => {
                    return (pos, Action::Close);
                }
            }
        }
        (pos, Action::NeedInput)
    }

    /// The link is encrypted: by our TLS, or upstream (`SSL`).
    pub fn secure(&self) -> bool {
        self.tls.is_some() || self.cfg.tls.link == Link::UpstreamTls
    }

    /// The TLS handshake (after STARTTLS, or before the greeting under
    /// SMTPS) succeeded. Everything learned in clear is forgotten
    /// (RFC 3207 §4.2): HELO name, envelope, any partial command.
    pub fn tls_started(&mut self, description: String) {
        self.tls = Some(description);
        self.helo = None;
        self.esmtp = false;
        self.txn = Transaction::default();
        self.partial.clear();
        self.overlong = false;
        self.auth_user = None;
        self.exchange = None;
        self.credentials = None;
        // What AUTH_SET_ changed goes with the AUTH.
        self.cfg.databytes = self.connect_settings.0;
        self.cfg.relayclient = self.connect_settings.1.clone();
        self.spp = self.spp_connected.clone();
        self.hook = None;
    }

    /// A client certificate was asked for in the handshake: what it
    /// earned, for the rest of the session (after [`Session::tls_started`]).
    /// The subject commonName of the client certificate verified in the
    /// handshake (Postfix's `ccert_subject` in policy requests).
    pub fn client_certificate_subject(&mut self, cn: Vec<u8>) {
        self.ccert_subject = Some(cn);
    }

    pub fn client_certificate(&mut self, relay: CertRelay) {
        self.cert_relay = Some(relay);
    }

    /// The address of a client certificate that grants relaying.
    fn cert_email(&self) -> Option<&[u8]> {
        match &self.cert_relay {
            Some(CertRelay::Granted(email)) => Some(email),
            _ => None,
        }
    }

    /// The authenticated user, if any.
    pub fn auth_user(&self) -> Option<&[u8]> {
        self.auth_user.as_ref().map(|(u, _)| u.as_slice())
    }

    fn policy(&self) -> Policy {
        Policy {
            tls: self.cfg.tls,
            auth: self.cfg.auth,
        }
    }

    fn link_state(&self) -> LinkState {
        LinkState {
            secure: self.secure(),
            starttls: self.offers_starttls(),
            authenticated: self.auth_user.is_some(),
        }
    }

    fn offers_starttls(&self) -> bool {
        self.cfg.tls.starttls && self.tls.is_none() && self.lookups.tls_available()
    }

    /// Where the session is, for the slow-client deadlines.
    pub fn pace_state(&self) -> crate::core::slowclient::State {
        use crate::core::slowclient::State;
        match self.phase {
            Phase::Data(_) => State::Data,
            Phase::Command if self.overlong => State::PartialLine(usize::MAX),
            Phase::Command if !self.partial.is_empty() => State::PartialLine(self.partial.len()),
            _ => State::Idle,
        }
    }

    /// The client closed the connection.
    pub fn eof(&mut self) -> Action {
        self.close(End::Eof)
    }

    /// End the session; the first reason given is the one reported.
    fn close(&mut self, why: End) -> Action {
        self.phase = Phase::Closed;
        self.end.get_or_insert(why);
        Action::Close
    }

    /// Why the session ended, if it did.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// The summary of the session for its last log line, in key=value
    /// form: client text quoted and escaped, never a secret.
    pub fn summary(&self) -> String {
        let mut s = format!("remote={}", printable(&self.cfg.remote_ip));
        if let Some(h) = &self.helo {
            s.push_str(&format!(" helo=\"{}\"", printable(h)));
        }
        if let Some(t) = &self.tls {
            s.push_str(&format!(" tls=\"{t}\""));
        } else if self.cfg.tls.link == Link::UpstreamTls {
            s.push_str(" tls=upstream");
        }
        if let Some((user, mech)) = &self.auth_user {
            s.push_str(&format!(" auth={} {}", mech.name(), auth::log_user(user)));
        }
        if let Some(email) = self.cert_email() {
            s.push_str(&format!(" cert=\"{}\"", printable(email)));
        }
        if self.auth_failures > 0 {
            s.push_str(&format!(" auth_failures={}", self.auth_failures));
        }
        s.push_str(&format!(" accepted={}", self.messages.len()));
        if !self.messages.is_empty() {
            let list: Vec<String> = self
                .messages
                .iter()
                .map(|(qp, bytes)| format!("{qp}:{bytes}"))
                .collect();
            s.push_str(&format!(" messages={}", list.join(",")));
        }
        s
    }

    /// `timeoutsmtpd` expired on a read or a write.
    pub fn timeout(&mut self, out: &mut Output) -> Action {
        reply::TIMEOUT.render(&mut out.replies);
        self.close(End::Timeout)
    }

    /// The edge started qmail-queue (`Ok(pid)`) or could not (`Err` with
    /// what qmail would have seen: exit 120 when exec failed).
    /// `now` is the Unix time for the Received header.
    pub fn queue_opened(
        &mut self,
        started: Result<u32, QueueOutcome>,
        now: u64,
        out: &mut Output,
    ) -> Action {
        let pid = match started {
            Ok(pid) => pid,
            Err(outcome) => {
                queue_reply(outcome)
                    .unwrap_or(reply::QQ_START)
                    .render(&mut out.replies);
                self.txn = Transaction::default();
                self.phase = Phase::Command;
                return Action::NeedInput;
            }
        };
        self.queue_pid = pid;
        reply::DATA_GO_AHEAD.render(&mut out.replies);
        let info = ReceivedInfo {
            remote_host: &self.cfg.remote_host,
            helo: self.helo.as_deref(),
            remote_info: self.auth_user().or(self.cfg.remote_info.as_deref()),
            remote_ip: &self.cfg.remote_ip,
            local: &self.cfg.local_host,
            // RFC 3848.
            protocol: super::received::protocol(
                self.esmtp,
                self.secure(),
                self.auth_user.is_some(),
                self.txn.smtputf8,
            ),
            tls: self.tls.as_deref(),
            cert: self.cert_email(),
        };
        received(&info, now, &mut out.body);
        // qmail-spp `H` headers, after our Received line.
        out.body.append(&mut self.spp.headers);
        // Policy service PREPEND headers.
        out.body.extend_from_slice(&self.txn.prepend);
        self.phase = Phase::Data(DataScanner::new(self.cfg.databytes));
        Action::NeedInput
    }

    /// qmail-queue's envelope: `F<sender>\0`, `T<rcpt>\0`…, `\0`.
    pub fn envelope(&self, out: &mut Vec<u8>) {
        out.push(b'F');
        out.extend_from_slice(self.txn.sender.as_deref().unwrap_or_default());
        out.push(0);
        for r in &self.txn.rcpts {
            out.push(b'T');
            out.extend_from_slice(r);
            out.push(0);
        }
        out.push(0);
    }

    /// qmail-queue finished after [`Action::FinishQueue`].
    pub fn queue_closed(&mut self, outcome: QueueOutcome, now: u64, out: &mut Output) -> Action {
        match queue_reply(outcome) {
            None => {
                let text = format!("ok {now} qp {}", self.queue_pid);
                render_line(&mut out.replies, 250, false, Some("2.0.0"), text.as_bytes());
                self.messages.push((self.queue_pid, self.message_bytes));
            }
            Some(r) => r.render(&mut out.replies),
        }
        self.spp.reset_message();
        self.txn = Transaction::default();
        self.phase = Phase::Command;
        Action::NeedInput
    }

    fn keep_partial(&mut self, rest: &[u8]) {
        if self.overlong || self.partial.len() + rest.len() >= MAX_COMMAND_LINE {
            self.overlong = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    fn end_of_data(&mut self, out: &mut Output) -> Action {
        let Phase::Data(scanner) = &self.phase else {
            unreachable!("end_of_data outside DATA")
        };
        self.message_bytes = scanner.bytes();
        let refusal = if scanner.hops() >= MAX_HOPS {
            Some(reply::TOO_MANY_HOPS)
        } else if scanner.too_big() {
            Some(reply::SIZE_EXCEEDED)
        } else {
            None
        };
        if let Some(r) = refusal {
            r.render(&mut out.replies);
            out.body.clear();
            self.spp.reset_message();
            self.txn = Transaction::default();
            self.phase = Phase::Command;
            return Action::AbortQueue;
        }
        self.phase = Phase::ClosingQueue;
        Action::FinishQueue
    }

    /// Count a protocol error; end the session when there are too many.
    fn error(&mut self, r: Reply, out: &mut Output) -> Action {
        r.render(&mut out.replies);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            reply::TOO_MANY_ERRORS.render(&mut out.replies);
            return self.close(End::TooManyErrors);
        }
        Action::NeedInput
    }

    fn line(&mut self, line: &[u8], out: &mut Output) -> Action {
        if self.cfg.transcript {
            out.log.push(format!("< {}", self.redacted(line)));
        }
        if let Some(exchange) = self.exchange.take() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let step = auth::respond(exchange, line);
            return self.auth_step(step, out);
        }
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(r) => return self.error(r, out),
        };
        match cmd {
            Command::Helo(name) | Command::Ehlo(name) => {
                let esmtp = matches!(cmd, Command::Ehlo(_));
                self.spp_set("SMTPHELOHOST", name);
                if self.hook_wanted(Hook::Helo) {
                    return self.ask_hook(Pending::Helo(name.to_vec(), esmtp));
                }
                self.helo_ok(name.to_vec(), esmtp, out)
            }
            Command::Mail {
                addr,
                size,
                smtputf8,
                ..
            } => {
                let action = self.mail(addr, size, out);
                if self.txn.sender.is_some() {
                    self.txn.smtputf8 = smtputf8;
                }
                action
            }
            Command::Rcpt { addr } => self.rcpt(addr, out),
            Command::Data => self.data(out),
            Command::Rset => {
                self.txn = Transaction::default();
                self.spp.reset_message();
                reply::RSET_OK.render(&mut out.replies);
                Action::NeedInput
            }
            Command::Noop => self.reply(reply::OK, out),
            Command::Vrfy => self.reply(reply::VRFY, out),
            Command::Help => self.reply(reply::HELP, out),
            Command::Quit => {
                render_line(
                    &mut out.replies,
                    221,
                    false,
                    Some("2.0.0"),
                    &self.cfg.greeting,
                );
                self.close(End::Quit)
            }
            Command::StartTls => self.starttls(out),
            Command::Unknown => self.error(reply::UNIMPLEMENTED, out),
            Command::Auth(arg) => self.auth(arg, out),
        }
    }

    /// HELO/EHLO accepted (after its `[helo]` hook).
    fn helo_ok(&mut self, name: Vec<u8>, esmtp: bool, out: &mut Output) -> Action {
        self.esmtp = esmtp;
        self.helo_flags = rcpt_checks::helo_flags(&self.cfg.rcpt_checks, &name);
        self.helo = Some(name);
        self.txn = Transaction::default();
        if self.esmtp {
            self.ehlo_reply(out);
        } else {
            render_line(&mut out.replies, 250, false, None, &self.cfg.greeting);
        }
        Action::NeedInput
    }

    /// Greet the client, running the `[connection]` plugins first if there
    /// are any. Call once, after an SMTPS handshake.
    pub fn connect(&mut self, out: &mut Output) -> Action {
        if self.hook_wanted(Hook::Connection) {
            return self.ask_hook(Pending::Connection);
        }
        self.greet(out);
        self.spp_connected = self.spp.clone();
        Action::NeedInput
    }

    /// Whether `hook` has plugins to run now.
    fn hook_wanted(&self, hook: Hook) -> bool {
        self.cfg.spp & hook.bit() != 0 && !self.spp.disabled
    }

    fn ask_hook(&mut self, pending: Pending) -> Action {
        let hook = match pending {
            Pending::Connection => Hook::Connection,
            Pending::Helo(..) => Hook::Helo,
            Pending::Mail(_) => Hook::Mail,
            Pending::Rcpt(_) => Hook::Rcpt,
            Pending::Pass(_) => Hook::Pass,
            Pending::Data => Hook::Data,
            Pending::Auth(..) => Hook::Auth,
            Pending::Policy(_) => unreachable!("not an spp hook"),
        };
        self.hook = Some(pending);
        Action::RunHook(hook)
    }

    /// Set a variable of spp's environment (only when plugins are
    /// configured: without them nothing sees it).
    fn spp_set(&mut self, name: &str, value: &[u8]) {
        if self.cfg.spp != 0 {
            self.spp.set(name, Some(value));
        }
    }

    /// Replies a plugin queued (`L`) for this command: sent, and the
    /// command refused without running plugins.
    fn spp_queued(&mut self, which: Later, out: &mut Output) -> bool {
        match self.spp.queued(which) {
            Some(q) => {
                out.replies.extend_from_slice(q);
                true
            }
            None => false,
        }
    }

    /// What plugins and qmail-queue see on top of our own environment:
    /// the AUTH variables and what qmail-spp set (the edge adds TLS ones).
    pub fn hook_env(&self) -> Vec<(String, Option<Vec<u8>>)> {
        self.queue_env()
    }

    /// The plugins of the hook asked for by [`Action::RunHook`] ran: apply
    /// what they said and finish the command that waited for them.
    pub fn hook_done(&mut self, run: &spp::Run, out: &mut Output) -> Action {
        let Some(pending) = self.hook.take() else {
            return Action::NeedInput;
        };
        out.log.extend(run.log.iter().cloned());
        self.spp.apply(run);
        out.replies.extend_from_slice(&run.print);
        let omit = match run.end {
            Some(spp::End::Drop) => return self.close(End::Plugin),
            Some(spp::End::Quit) => {
                out.replies.extend_from_slice(&run.message);
                return self.close(End::Plugin);
            }
            Some(spp::End::Reject | spp::End::Failure) => {
                // At [connection] the text is the greeting; elsewhere the
                // command is refused. The session goes on.
                out.replies.extend_from_slice(&run.message);
                match pending {
                    Pending::Connection => self.spp_connected = self.spp.clone(),
                    Pending::Auth(..) => {
                        self.spp.set("SMTPAUTHUSER", None);
                        self.spp.set("SMTPAUTHMETHOD", None);
                    }
                    _ => {}
                }
                return Action::NeedInput;
            }
            Some(spp::End::Omit) => true,
            Some(spp::End::Accept | spp::End::Next) | None => false,
        };
        let addr = |a: Vec<u8>| run.address.clone().unwrap_or(a);
        match pending {
            Pending::Connection => {
                self.greet(out);
                self.spp_connected = self.spp.clone();
                Action::NeedInput
            }
            Pending::Helo(name, esmtp) => self.helo_ok(name, esmtp, out),
            Pending::Mail(a) => self.mail_ok(addr(a), omit, out),
            Pending::Rcpt(a) => self.rcpt_after_hook(addr(a), omit, out),
            Pending::Pass(a) => self.rcpt_accept(addr(a), out),
            Pending::Data => {
                self.phase = Phase::OpeningQueue;
                Action::OpenQueue
            }
            Pending::Auth(user, mech) => self.auth_ok(&user, mech, out),
            Pending::Policy(a) => self.rcpt_add(a, out),
        }
    }

    /// The attributes of a policy request after [`Action::AskPolicy`]
    /// (Postfix SMTPD_POLICY_README); the edge adds the TLS and port ones.
    pub fn policy_request(&self) -> Vec<(&'static str, Vec<u8>)> {
        let rcpt = match &self.hook {
            Some(Pending::Policy(a)) => a.clone(),
            _ => Vec::new(),
        };
        let (user, method) = match &self.auth_user {
            Some((u, m)) => (u.clone(), m.name().to_ascii_lowercase().into_bytes()),
            None => (Vec::new(), Vec::new()),
        };
        let cfg = &self.cfg;
        let mut request = vec![
            ("request", b"smtpd_access_policy".to_vec()),
            ("protocol_state", b"RCPT".to_vec()),
            (
                "protocol_name",
                if self.esmtp {
                    b"ESMTP".to_vec()
                } else {
                    b"SMTP".to_vec()
                },
            ),
            ("helo_name", self.helo.clone().unwrap_or_default()),
            ("queue_id", Vec::new()),
            ("sender", self.txn.sender.clone().unwrap_or_default()),
            ("recipient", rcpt),
            (
                "recipient_count",
                self.txn.rcpts.len().to_string().into_bytes(),
            ),
            ("client_address", cfg.remote_ip.clone()),
            ("client_name", cfg.remote_host.clone()),
            ("reverse_client_name", cfg.remote_host.clone()),
            ("instance", self.transactions.to_string().into_bytes()),
            ("sasl_method", method),
            ("sasl_username", user),
            ("sasl_sender", Vec::new()),
            ("size", self.txn.size.to_string().into_bytes()),
        ];
        if let Some(cn) = &self.ccert_subject {
            request.push(("ccert_subject", cn.clone()));
        }
        request
    }

    /// The policy service's verdict on the recipient of
    /// [`Action::AskPolicy`].
    pub fn policy_answered(
        &mut self,
        verdict: crate::core::policy_delegation::Verdict,
        out: &mut Output,
    ) -> Action {
        use crate::core::policy_delegation::Decision;
        let Some(Pending::Policy(addr)) = self.hook.take() else {
            return Action::NeedInput;
        };
        if let Some(l) = verdict.log {
            out.log.push(l);
        }
        match verdict.decision {
            Decision::Accept => self.rcpt_add(addr, out),
            Decision::Prepend(h) => {
                self.txn.prepend.extend_from_slice(&h);
                self.txn.prepend.push(b'\n');
                self.rcpt_add(addr, out)
            }
            Decision::Refuse(code, enh, text) => {
                render_line(&mut out.replies, code, false, Some(&enh), &text);
                Action::NeedInput
            }
        }
    }

    fn starttls(&mut self, out: &mut Output) -> Action {
        if self.secure() {
            return self.error(reply::TLS_ALREADY_ACTIVE, out);
        }
        if !self.cfg.tls.starttls {
            return self.error(reply::TLS_NOT_OFFERED, out);
        }
        if !self.lookups.tls_ready() {
            return self.reply(reply::TLS_UNAVAILABLE, out);
        }
        reply::STARTTLS_READY.render(&mut out.replies);
        Action::StartTls
    }

    /// `AUTH mechanism [initial-response]`.
    fn auth(&mut self, arg: &[u8], out: &mut Output) -> Action {
        let mechs = match self.policy().auth(self.link_state()) {
            Ok(m) => m,
            Err(r) => return self.error(r, out),
        };
        if self.helo.is_none() || !self.esmtp {
            return self.error(reply::EHLO_FIRST, out);
        }
        if self.txn.sender.is_some() {
            return self.error(reply::AUTH_IN_TRANSACTION, out);
        }
        let mut words = arg.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let (Some(name), initial, None) = (words.next(), words.next(), words.next()) else {
            return self.error(reply::AUTH_SYNTAX, out);
        };
        let Some(mech) = Mechanism::parse(name).filter(|m| mechs.contains(m)) else {
            return self.error(reply::AUTH_UNKNOWN_MECHANISM, out);
        };
        let step = auth::start(mech, initial, || self.lookups.cram_challenge());
        self.auth_mech_started = Some(mech);
        self.auth_step(step, out)
    }

    fn auth_step(&mut self, step: Step, out: &mut Output) -> Action {
        match step {
            Step::Challenge(c, exchange) => {
                let text = auth::encode(&c);
                render_line(&mut out.replies, 334, false, None, text.as_bytes());
                self.exchange = Some(exchange);
                Action::NeedInput
            }
            Step::Done(creds) => {
                self.credentials = Some(creds);
                Action::CheckPassword
            }
            Step::Failed(Failure::Cancelled) => self.error(reply::AUTH_CANCELLED, out),
            Step::Failed(Failure::Malformed) => self.error(reply::AUTH_MALFORMED, out),
            Step::Failed(Failure::ClientFirst) => self.error(reply::AUTH_CLIENT_FIRST, out),
            Step::Failed(Failure::Invalid { user }) => {
                let mech = self.auth_mech_started.map_or("?", Mechanism::name);
                self.auth_failure(&user, mech, "invalid", out)
            }
        }
    }

    /// A command line as the transcript shows it: AUTH responses and
    /// initial responses replaced by `<redacted>`.
    fn redacted(&self, line: &[u8]) -> String {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.exchange.is_some() {
            return "<redacted>".into();
        }
        let mut words = line.splitn(3, |&b| b == b' ');
        if let (Some(verb), Some(mech), Some(_)) = (words.next(), words.next(), words.next()) {
            if verb.eq_ignore_ascii_case(b"AUTH") {
                return format!("{} {} <redacted>", printable(verb), printable(mech));
            }
        }
        printable(line)
    }

    /// The credentials for the edge to check after [`Action::CheckPassword`].
    pub fn take_credentials(&mut self) -> Option<Credentials> {
        self.credentials.take()
    }

    /// checkpassword's verdict on the credentials taken.
    pub fn auth_checked(
        &mut self,
        user: &[u8],
        mechanism: Mechanism,
        result: AuthResult,
        out: &mut Output,
    ) -> Action {
        match result {
            AuthResult::Accepted => {
                self.spp_set("SMTPAUTHUSER", user);
                // As qmail-queue gets it (qmail-spp said "plain", "login").
                self.spp_set("SMTPAUTHMETHOD", mechanism.name().as_bytes());
                if self.hook_wanted(Hook::Auth) {
                    return self.ask_hook(Pending::Auth(user.to_vec(), mechanism));
                }
                self.auth_ok(user, mechanism, out)
            }
            AuthResult::Rejected => self.auth_failure(user, mechanism.name(), "rejected", out),
            AuthResult::TempFail => {
                out.log.push(format!(
                    "AUTH temporary failure: remote={} mech={} {}",
                    printable(&self.cfg.remote_ip),
                    mechanism.name(),
                    auth::log_user(user)
                ));
                self.reply(reply::AUTH_TEMP_FAIL, out)
            }
        }
    }

    /// AUTH granted (after its `[auth]` hook).
    fn auth_ok(&mut self, user: &[u8], mechanism: Mechanism, out: &mut Output) -> Action {
        reply::AUTH_OK.render(&mut out.replies);
        out.log.push(format!(
            "AUTH ok: remote={} mech={} {}",
            printable(&self.cfg.remote_ip),
            mechanism.name(),
            auth::log_user(user)
        ));
        self.auth_user = Some((user.to_vec(), mechanism));
        for (name, value) in &self.cfg.auth_env {
            match name.as_str() {
                // Read as DATABYTES is: leading digits.
                "DATABYTES" => self.cfg.databytes = crate::core::policy::number(value.as_deref()),
                "RELAYCLIENT" => self.cfg.relayclient = value.clone(),
                _ => {}
            }
        }
        Action::NeedInput
    }

    /// Count a failed AUTH: a growing delay, a log line fail2ban can match,
    /// and the end of the session after too many.
    fn auth_failure(&mut self, user: &[u8], mech: &str, why: &str, out: &mut Output) -> Action {
        self.auth_failures += 1;
        out.log.push(format!(
            "AUTH failed: remote={} mech={mech} {} reason={why} failures={}",
            printable(&self.cfg.remote_ip),
            auth::log_user(user),
            self.auth_failures
        ));
        out.delay_ms = self
            .cfg
            .auth_failure_delay_ms
            .saturating_mul(u64::from(self.auth_failures));
        reply::AUTH_FAILED.render(&mut out.replies);
        if self.auth_failures >= self.cfg.max_auth_failures {
            reply::TOO_MANY_AUTH_FAILURES.render(&mut out.replies);
            return self.close(End::TooManyAuthFailures);
        }
        Action::NeedInput
    }

    /// What qmail-queue's environment gets after AUTH: the user for queue
    /// filters, and the `AUTH_SET_`/`AUTH_UNSET_` variables (`None`
    /// unsets).
    pub fn queue_env(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let Some((user, mech)) = &self.auth_user else {
            return self.spp.env.clone();
        };
        let mut env: Vec<(String, Option<Vec<u8>>)> =
            ["SMTPAUTHUSER", "SMTP_AUTH_USER", "TCPREMOTEINFO"]
                .into_iter()
                .map(|k| (k.to_string(), Some(user.clone())))
                .collect();
        env.push((
            "SMTPAUTHMETHOD".into(),
            Some(mech.name().as_bytes().to_vec()),
        ));
        env.extend(self.cfg.auth_env.iter().cloned());
        // What qmail-spp put into the environment (`S`, `U`, `SMTP*`).
        env.extend(self.spp.env.iter().cloned());
        env
    }

    fn reply(&mut self, r: Reply, out: &mut Output) -> Action {
        r.render(&mut out.replies);
        Action::NeedInput
    }

    /// The EHLO reply: the greeting, then one keyword per line.
    fn ehlo_reply(&self, out: &mut Output) {
        let size = format!("SIZE {}", self.cfg.databytes);
        let mut keywords: Vec<&[u8]> = vec![
            b"PIPELINING",
            b"8BITMIME",
            b"SMTPUTF8",
            b"ENHANCEDSTATUSCODES",
            size.as_bytes(),
        ];
        if self.offers_starttls() {
            keywords.push(b"STARTTLS");
        }
        let auth = match self.policy().auth(self.link_state()) {
            Ok(mechs) => {
                let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
                format!("AUTH {}", names.join(" "))
            }
            Err(_) => String::new(),
        };
        if !auth.is_empty() {
            keywords.push(auth.as_bytes());
        }
        render_line(&mut out.replies, 250, true, None, &self.cfg.greeting);
        for (i, k) in keywords.iter().enumerate() {
            render_line(&mut out.replies, 250, i + 1 < keywords.len(), None, k);
        }
    }

    fn mail(&mut self, addr: Vec<u8>, size: Option<u64>, out: &mut Output) -> Action {
        if self.txn.sender.is_some() {
            return self.error(reply::NESTED_MAIL, out);
        }
        let policy = self.policy();
        if let Err(r) = policy.mail(self.link_state()) {
            return self.reply(r, out);
        }
        if let Err(r) = policy.sender(self.auth_user(), &addr) {
            return self.reply(r, out);
        }
        if let Some(size) = size {
            if self.cfg.databytes > 0 && size > self.cfg.databytes {
                return self.reply(reply::SIZE_EXCEEDED, out);
            }
        }
        if self.spp_queued(Later::Mail, out) {
            return Action::NeedInput;
        }
        self.txn.size = size.unwrap_or(0);
        self.spp.rcpts_all = 0;
        self.spp_set("SMTPMAILFROM", &addr);
        if self.hook_wanted(Hook::Mail) {
            return self.ask_hook(Pending::Mail(addr));
        }
        self.mail_ok(addr, false, out)
    }

    /// MAIL after its hook; `omit` (spp `O`) skips badmailfrom.
    fn mail_ok(&mut self, addr: Vec<u8>, omit: bool, out: &mut Output) -> Action {
        let refused = if omit {
            None
        } else {
            rcpt_checks::sender_refused(
                &self.cfg.badmailfrom,
                &self.cfg.rcpt_checks,
                self.may_relay(),
                &addr,
            )
        };
        if let Some((file, line)) = &refused {
            if self.cfg.rcpt_checks.logregex {
                out.log
                    .push(format!("badmailfrom: refused by {file} line \"{line}\""));
            }
        }
        self.txn.bad_sender = refused.is_some();
        self.txn.sender = Some(addr);
        self.transactions += 1;
        self.reply(reply::MAIL_OK, out)
    }

    fn rcpt(&mut self, mut addr: Vec<u8>, out: &mut Output) -> Action {
        if self.txn.sender.is_none() {
            return self.error(reply::MAIL_FIRST, out);
        }
        self.txn.rcpt_attempted = true;
        if self.txn.bad_sender {
            return self.reply(reply::BADMAILFROM, out);
        }
        if addr.is_empty() {
            return self.reply(reply::EMPTY_RCPT, out);
        }
        if let Err(r) = command::check_rcpt_utf8(&addr, self.txn.smtputf8) {
            return self.reply(r, out);
        }
        if self.txn.rcpts.len() >= self.cfg.max_rcpts {
            return self.reply(reply::TOO_MANY_RCPTS, out);
        }
        let may_relay = self.may_relay();
        if let Some(v) = rcpt_checks::before_relay(
            &self.cfg.rcpt_checks,
            &mut self.rcpt_counters,
            &self.helo_flags,
            &addr,
            may_relay,
            &mut out.log,
        ) {
            return self.verdict(v, out);
        }
        self.rewrite_local_literal(&mut addr);
        if self.spp_queued(Later::Rcpt, out) {
            return Action::NeedInput;
        }
        if self.cfg.spp != 0 {
            self.spp.rcpts_all += 1;
            let hosts_ok = self.may_relay() || self.rcpt_allowed(&addr) == Ok(None);
            self.spp_set("SMTPRCPTTO", &addr);
            self.spp_set("SMTPRCPTCOUNT", self.txn.rcpts.len().to_string().as_bytes());
            self.spp_set(
                "SMTPRCPTCOUNTALL",
                self.spp.rcpts_all.to_string().as_bytes(),
            );
            self.spp_set("SMTPRCPTHOSTSOK", if hosts_ok { b"1" } else { b"0" });
        }
        if self.hook_wanted(Hook::Rcpt) {
            return self.ask_hook(Pending::Rcpt(addr));
        }
        self.rcpt_after_hook(addr, false, out)
    }

    /// RCPT after its `[rcpt]` hook; `omit` (spp `O`) skips rcpthosts
    /// (validrcptto and RCPTCHECK still run, as in jms1's patch).
    fn rcpt_after_hook(&mut self, addr: Vec<u8>, omit: bool, out: &mut Output) -> Action {
        // RELAYCLIENT, an authenticated client (RFC 4954 §6) or one with a
        // certificate listed in tlsclients (qmail-tls) may relay; so may a
        // recipient a plugin accepted with `O`.
        let may_relay = self.may_relay();
        let (mut in_rcpthosts, mut found) = (false, false);
        if !may_relay {
            if !omit {
                match self.rcpt_allowed(&addr) {
                    Ok(None) => in_rcpthosts = true,
                    Ok(Some(r)) => {
                        self.rcpt_counters.bad = self.rcpt_counters.bad.saturating_add(1);
                        if let (Some(c), true) = (&self.cert_relay, r == reply::NOT_IN_RCPTHOSTS) {
                            // qmail-tls: say why the certificate did not help.
                            let text =
                                format!("{}; no valid cert for gatewaying: {}", r.text, c.reason());
                            render_line(
                                &mut out.replies,
                                r.code,
                                false,
                                r.enhanced,
                                text.as_bytes(),
                            );
                            return Action::NeedInput;
                        }
                        return self.reply(r, out);
                    }
                    Err(LookupError) => {
                        reply::CONTROL_UNREADABLE.render(&mut out.replies);
                        return self.close(End::ControlUnreadable);
                    }
                }
            }
            match self.validrcptto(&addr, out) {
                Ok(f) => found = f,
                Err(action) => return action,
            }
        }
        let rc = &self.cfg.rcpt_checks;
        if rc.rcptcheck.is_some() && (!may_relay || rc.rcptcheck_relay) {
            self.rcptcheck_pending = Some((addr, in_rcpthosts, found));
            return Action::RcptCheck;
        }
        self.rcpt_pass(addr, out)
    }

    /// The recipient passed our checks and RCPTCHECK: the `[pass]` hook,
    /// then the policy service.
    fn rcpt_pass(&mut self, addr: Vec<u8>, out: &mut Output) -> Action {
        if self.hook_wanted(Hook::Pass) {
            self.spp_set("SMTPRCPTTO", &addr);
            let count = self.txn.rcpts.len() + 1;
            self.spp_set("SMTPRCPTCOUNT", count.to_string().as_bytes());
            return self.ask_hook(Pending::Pass(addr));
        }
        self.rcpt_accept(addr, out)
    }

    /// The recipient passed every check: add it (with `RELAYCLIENT`'s
    /// suffix).
    fn rcpt_accept(&mut self, addr: Vec<u8>, out: &mut Output) -> Action {
        if self.cfg.policy_service {
            self.hook = Some(Pending::Policy(addr));
            return Action::AskPolicy;
        }
        self.rcpt_add(addr, out)
    }

    fn rcpt_add(&mut self, mut addr: Vec<u8>, out: &mut Output) -> Action {
        if let Some(rc) = &self.cfg.relayclient {
            addr.extend_from_slice(rc);
        }
        self.txn.rcpts.push(addr);
        self.reply(reply::RCPT_OK, out)
    }

    /// The validrcptto lists (src/core/rcpt_checks.rs): `Ok(found in a list)`,
    /// or `Err` with the action that ends the RCPT.
    fn validrcptto(&mut self, addr: &[u8], out: &mut Output) -> Result<bool, Action> {
        if !self.cfg.rcpt_checks.validrcptto() {
            return Ok(false);
        }
        let (cfg, lookups) = (&self.cfg.rcpt_checks, &self.lookups);
        let in_list = |k: &[u8]| {
            let listed = cfg
                .sagredo_list
                .as_ref()
                .is_some_and(|l| l.contains_lower(k));
            Ok(listed || (cfg.sagredo_cdb && lookups.more_validrcptto(k)?))
        };
        let verdict = rcpt_checks::check_validrcptto(
            cfg,
            &mut self.rcpt_counters,
            addr,
            in_list,
            |k| lookups.validrcptto(k),
            &mut out.log,
        );
        match verdict {
            Ok(v) if v.reply.is_none() => Ok(v.found),
            Ok(v) => Err(self.verdict(v, out)),
            Err(LookupError) => {
                reply::CONTROL_UNREADABLE.render(&mut out.replies);
                Err(self.close(End::ControlUnreadable))
            }
        }
    }

    /// The environment RCPTCHECK gets for the recipient waiting on it
    /// (added to ours): `SENDER`, `RECIPIENT`, `HELO`, `USE_FD4=1`, and
    /// `RCPTHOSTS=1` when it passed rcpthosts, `RCPTFOUND=1` when a
    /// validrcptto list accepted it (sagredo).
    pub fn rcptcheck_env(&self) -> Vec<(String, Vec<u8>)> {
        let Some((addr, in_rcpthosts, found)) = &self.rcptcheck_pending else {
            return Vec::new();
        };
        let mut env = vec![
            (
                "SENDER".to_string(),
                self.txn.sender.clone().unwrap_or_default(),
            ),
            ("RECIPIENT".to_string(), addr.clone()),
            ("HELO".to_string(), self.helo.clone().unwrap_or_default()),
            ("USE_FD4".to_string(), b"1".to_vec()),
        ];
        if *in_rcpthosts {
            env.push(("RCPTHOSTS".to_string(), b"1".to_vec()));
        }
        if *found {
            env.push(("RCPTFOUND".to_string(), b"1".to_vec()));
        }
        env
    }

    /// RCPTCHECK's verdict on the recipient waiting for it.
    pub fn rcpt_checked(
        &mut self,
        outcome: &crate::core::rcptcheck::Outcome,
        out: &mut Output,
    ) -> Action {
        let Some((addr, _, _)) = self.rcptcheck_pending.take() else {
            return Action::NeedInput;
        };
        let d = crate::core::rcptcheck::decide(outcome);
        out.log.push(format!(
            "RCPTCHECK: rcpt=\"{}\" {}",
            printable(&addr),
            d.why
        ));
        match d.reply {
            None => self.rcpt_pass(addr, out),
            Some(r) => {
                out.replies.extend_from_slice(&r);
                if d.close {
                    self.close(End::RcptCheck)
                } else {
                    Action::NeedInput
                }
            }
        }
    }

    /// Give a recipient check's refusal (src/core/rcpt_checks.rs).
    fn verdict(&mut self, v: rcpt_checks::Verdict, out: &mut Output) -> Action {
        if let Some(r) = v.reply {
            r.render(&mut out.replies);
        }
        if v.close {
            return self.close(End::TooManyInvalidRcpts);
        }
        Action::NeedInput
    }

    /// `RELAYCLIENT` is set or the client authenticated.
    fn may_relay(&self) -> bool {
        self.cfg.relayclient.is_some() || self.auth_user.is_some() || self.cert_email().is_some()
    }

    /// `user@[a.b.c.d]` naming one of our own addresses becomes
    /// `user@<localiphost>` (qmail's `addrparse`).
    fn rewrite_local_literal(&self, addr: &mut Vec<u8>) {
        let Some(liphost) = &self.cfg.localiphost else {
            return;
        };
        let Some(at) = addr.iter().rposition(|&b| b == b'@') else {
            return;
        };
        let Some(ip) = parse_bracketed_ipv4(&addr[at + 1..]) else {
            return;
        };
        if self.lookups.is_local_ip(ip) {
            addr.truncate(at + 1);
            addr.extend_from_slice(liphost);
        }
    }

    /// The relay rule for a client without RELAYCLIENT: `Ok(None)` allows.
    fn rcpt_allowed(&self, addr: &[u8]) -> Result<Option<Reply>, LookupError> {
        let Some(rcpthosts) = &self.cfg.rcpthosts else {
            return Ok(Some(reply::NO_RCPTHOSTS));
        };
        let (local, domain) = match addr.iter().rposition(|&b| b == b'@') {
            Some(at) => (&addr[..at], Some(&addr[at + 1..])),
            None => (addr, None),
        };
        // qmail: an address without a domain is local (postmaster).
        if let Some(domain) = domain {
            if !self.domain_is_ours(rcpthosts, &domain.to_ascii_lowercase())? {
                return Ok(Some(reply::NOT_IN_RCPTHOSTS));
            }
        }
        // Sender-specified routing would let a message that names one of
        // our domains be passed on elsewhere (percenthack, bang paths,
        // `"u@elsewhere"@us`): never accept it from an unauthorised client.
        if local.iter().any(|&b| matches!(b, b'%' | b'!' | b'@')) {
            return Ok(Some(reply::SENDER_ROUTING));
        }
        Ok(None)
    }

    /// qmail's `rcpthosts()`: the domain or any `.suffix` of it is listed in
    /// rcpthosts or morercpthosts.cdb. `domain` is lower-cased.
    fn domain_is_ours(&self, rcpthosts: &NameSet, domain: &[u8]) -> Result<bool, LookupError> {
        let suffixes = (0..domain.len()).filter(|&i| i == 0 || domain[i] == b'.');
        if suffixes
            .clone()
            .any(|i| rcpthosts.contains_lower(&domain[i..]))
        {
            return Ok(true);
        }
        for i in suffixes {
            if self.lookups.more_rcpthosts(&domain[i..])? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn data(&mut self, out: &mut Output) -> Action {
        if self.txn.sender.is_none() {
            return self.error(reply::MAIL_FIRST, out);
        }
        if self.txn.rcpts.is_empty() {
            let r = if self.txn.rcpt_attempted {
                reply::NO_VALID_RCPTS
            } else {
                reply::RCPT_FIRST
            };
            return self.error(r, out);
        }
        if self.spp_queued(Later::Data, out) {
            return Action::NeedInput;
        }
        if self.hook_wanted(Hook::Data) {
            return self.ask_hook(Pending::Data);
        }
        self.phase = Phase::OpeningQueue;
        Action::OpenQueue
    }
}

/// Client text for a log line: printable ASCII kept, anything else (and
/// `"`, `\\`) as `\xNN`, at most 100 bytes.
pub fn printable(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s.iter().take(100) {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if s.len() > 100 {
        out.push_str("...");
    }
    out
}

/// `[a.b.c.d]` → the four octets (qmail's `ip_scanbracket`).
fn parse_bracketed_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    let inner = s.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let mut ip = [0u8; 4];
    let mut parts = inner.split(|&b| b == b'.');
    for octet in &mut ip {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        *octet = u8::try_from(v).ok()?;
    }
    parts.next().is_none().then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_ipv4() {
        assert_eq!(parse_bracketed_ipv4(b"[127.0.0.1]"), Some([127, 0, 0, 1]));
        assert_eq!(parse_bracketed_ipv4(b"[256.0.0.1]"), None);
        assert_eq!(parse_bracketed_ipv4(b"[1.2.3]"), None);
        assert_eq!(parse_bracketed_ipv4(b"[1.2.3.4.5]"), None);
        assert_eq!(parse_bracketed_ipv4(b"1.2.3.4"), None);
        assert_eq!(parse_bracketed_ipv4(b"[IPv6:::1]"), None);
    }

    #[test]
    fn queue_exit_table() {
        let r = |c| {
            queue_reply(QueueOutcome {
                exit: QueueExit::Exited(c),
                write_failed: false,
            })
        };
        assert_eq!(r(0), None);
        assert_eq!(r(11), Some(reply::QQ_ADDRESS_TOO_LONG));
        assert_eq!(r(115), Some(reply::QQ_ADDRESS_TOO_LONG));
        assert_eq!(r(31), Some(reply::QQ_PERM_REJECTED));
        assert_eq!(r(12), Some(reply::QQ_PERM_PROBLEM));
        assert_eq!(r(40), Some(reply::QQ_PERM_PROBLEM));
        assert_eq!(r(41), Some(reply::QQ_TEMP_PROBLEM));
        assert_eq!(r(51), Some(reply::QQ_OUT_OF_MEMORY));
        assert_eq!(r(52), Some(reply::QQ_TIMEOUT));
        assert_eq!(r(53), Some(reply::QQ_WRITE_ERROR));
        assert_eq!(r(54), Some(reply::QQ_READ_ERROR));
        assert_eq!(r(55), Some(reply::QQ_CONFIG));
        assert_eq!(r(56), Some(reply::QQ_NETWORK));
        assert_eq!(r(61), Some(reply::QQ_HOME));
        for c in 62..=66 {
            assert_eq!(r(c), Some(reply::QQ_QUEUE_FILES));
        }
        assert_eq!(r(71), Some(reply::QQ_TEMP_REJECTED));
        assert_eq!(r(72), Some(reply::QQ_REMOTE_TIMEOUT));
        assert_eq!(r(73), Some(reply::QQ_REMOTE_REJECTED));
        assert_eq!(r(74), Some(reply::QQ_COMMUNICATION));
        assert_eq!(r(81), Some(reply::QQ_BUG));
        assert_eq!(r(91), Some(reply::QQ_BUG));
        assert_eq!(r(120), Some(reply::QQ_EXEC));
        assert_eq!(r(1), Some(reply::QQ_TEMP_PROBLEM));
        assert_eq!(r(100), Some(reply::QQ_TEMP_PROBLEM));
        for c in 0..=255 {
            let rep = r(c);
            if let Some(rep) = rep {
                assert!(rep.code == 451 || rep.code == 554, "exit {c}");
            }
        }
        assert_eq!(
            queue_reply(QueueOutcome {
                exit: QueueExit::Exited(0),
                write_failed: true
            }),
            Some(reply::QQ_READ_ERROR)
        );
        assert_eq!(
            queue_reply(QueueOutcome {
                exit: QueueExit::Signaled,
                write_failed: false
            }),
            Some(reply::QQ_CRASHED)
        );
    }
}
