//! Every SMTP reply the server can send, as named constants, and the one
//! function that renders a reply onto the wire.
//!
//! Wording follows qmail-smtpd where qmail had a reply for the case; the
//! RFC 3463 enhanced status code comes first in the text (RFC 2034), and the
//! old `(#x.y.z)` suffix is dropped. No reply ever contains text the client
//! sent (no cross-protocol reflection): the few replies with variable parts
//! take only values the server itself owns (greeting, time, pid).

/// One fixed reply: basic code, enhanced code and human text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 enhanced status code, e.g. `"5.5.1"`; `None` for the
    /// replies RFC 2034 exempts (greeting, HELO/EHLO, 354).
    pub enhanced: Option<&'static str>,
    pub text: &'static str,
}

impl Reply {
    const fn new(code: u16, enhanced: &'static str, text: &'static str) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            text,
        }
    }

    /// True for 4xx and 5xx replies.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// Append this reply, CRLF-terminated, to `out`.
    pub fn render(&self, out: &mut Vec<u8>) {
        render_line(out, self.code, false, self.enhanced, self.text.as_bytes());
    }
}

/// Append one reply line. `more` selects the `-` continuation separator.
pub fn render_line(out: &mut Vec<u8>, code: u16, more: bool, enhanced: Option<&str>, text: &[u8]) {
    out.extend_from_slice(&code_digits(code));
    out.push(if more { b'-' } else { b' ' });
    if let Some(e) = enhanced {
        out.extend_from_slice(e.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn code_digits(code: u16) -> [u8; 3] {
    let c = code.min(999);
    [
        b'0' + (c / 100) as u8,
        b'0' + (c / 10 % 10) as u8,
        b'0' + (c % 10) as u8,
    ]
}

// ---- connection-level -------------------------------------------------

/// A control file exists but cannot be read (qmail's `die_control`).
pub const CONTROL_UNREADABLE: Reply = Reply::new(421, "4.3.0", "unable to read controls");
/// Out of memory or another local failure while setting up.
pub const LOCAL_PROBLEM: Reply = Reply::new(421, "4.3.0", "local problem, closing connection");
/// `timeoutsmtpd` seconds passed with no progress on a read or a write.
pub const TIMEOUT: Reply = Reply::new(421, "4.4.2", "timeout, closing connection");
/// Too many unknown commands, syntax errors or sequence errors.
pub const TOO_MANY_ERRORS: Reply = Reply::new(421, "4.7.0", "too many errors, closing connection");

/// The client spoke before the greeting (`DROP_PRE_GREET`).
pub const PROTOCOL_VIOLATION: Reply = Reply::new(554, "5.5.0", "SMTP protocol violation");

/// The environment asks for something impossible (see the log line).
pub const POLICY_CONTRADICTION: Reply = Reply::new(
    421,
    "4.3.5",
    "server configuration error for this client, closing connection",
);

// ---- TLS ------------------------------------------------------------------

pub const STARTTLS_READY: Reply = Reply::new(220, "2.0.0", "Ready to start TLS");
pub const TLS_UNAVAILABLE: Reply =
    Reply::new(454, "4.7.0", "TLS not available due to local problem");
pub const TLS_ALREADY_ACTIVE: Reply = Reply::new(503, "5.5.1", "TLS already active");
pub const TLS_NOT_OFFERED: Reply = Reply::new(502, "5.5.1", "STARTTLS not offered to this client");
pub const MUST_STARTTLS: Reply = Reply::new(530, "5.7.0", "Must issue a STARTTLS command first");

// ---- AUTH (RFC 4954) -------------------------------------------------------

pub const AUTH_OK: Reply = Reply::new(235, "2.7.0", "Authentication successful");
pub const AUTH_FAILED: Reply = Reply::new(535, "5.7.8", "Authentication credentials invalid");
pub const AUTH_TEMP_FAIL: Reply = Reply::new(454, "4.7.0", "Temporary authentication failure");
pub const AUTH_REQUIRED: Reply = Reply::new(530, "5.7.0", "Authentication required");
pub const ENCRYPTION_REQUIRED: Reply = Reply::new(
    538,
    "5.7.11",
    "Encryption required for requested authentication mechanism",
);
pub const AUTH_ALREADY: Reply = Reply::new(503, "5.5.1", "already authenticated");
pub const AUTH_IN_TRANSACTION: Reply =
    Reply::new(503, "5.5.1", "AUTH not allowed during a mail transaction");
pub const EHLO_FIRST: Reply = Reply::new(503, "5.5.1", "EHLO first");
pub const AUTH_SYNTAX: Reply =
    Reply::new(501, "5.5.4", "syntax: AUTH mechanism [initial-response]");
pub const AUTH_UNKNOWN_MECHANISM: Reply =
    Reply::new(504, "5.5.4", "Unrecognized authentication type");
pub const AUTH_CANCELLED: Reply = Reply::new(501, "5.0.0", "AUTH cancelled");
pub const AUTH_MALFORMED: Reply = Reply::new(501, "5.5.2", "Cannot decode AUTH response");
/// RFC 4954 §4 and §6: an initial response where the server speaks first.
pub const AUTH_CLIENT_FIRST: Reply =
    Reply::new(501, "5.7.0", "Client initiated Authentication Exchange");
/// RFC 4954 §6: an AUTH response over the line limit.
pub const AUTH_LINE_TOO_LONG: Reply =
    Reply::new(500, "5.5.6", "Authentication Exchange line is too long");
pub const TOO_MANY_AUTH_FAILURES: Reply = Reply::new(
    421,
    "4.7.0",
    "too many authentication failures, closing connection",
);
pub const SENDER_NOT_USER: Reply = Reply::new(
    553,
    "5.7.1",
    "sorry, the envelope sender must be the authenticated user",
);

// ---- generic command replies -------------------------------------------

pub const OK: Reply = Reply::new(250, "2.0.0", "ok");
pub const MAIL_OK: Reply = Reply::new(250, "2.1.0", "ok");
pub const RCPT_OK: Reply = Reply::new(250, "2.1.5", "ok");
pub const RSET_OK: Reply = Reply::new(250, "2.0.0", "flushed");
pub const VRFY: Reply = Reply::new(252, "2.1.5", "send some mail, i'll try my best");
pub const HELP: Reply = Reply::new(
    214,
    "2.0.0",
    "qmail-smtpd: see https://cr.yp.to/qmail.html and qmail-smtpd(8)",
);
pub const DATA_GO_AHEAD: Reply = Reply {
    code: 354,
    enhanced: None,
    text: "go ahead, end data with <CR><LF>.<CR><LF>",
};

pub const UNIMPLEMENTED: Reply = Reply::new(502, "5.5.1", "unimplemented");
pub const LINE_TOO_LONG: Reply = Reply::new(500, "5.5.2", "line too long");
pub const NUL_IN_COMMAND: Reply = Reply::new(500, "5.5.2", "NUL or bare CR in command line");
pub const SYNTAX: Reply = Reply::new(501, "5.5.4", "syntax error");
pub const HELO_NEEDS_DOMAIN: Reply = Reply::new(501, "5.5.4", "HELO/EHLO requires a domain");
pub const NO_ARGUMENTS: Reply = Reply::new(501, "5.5.4", "this command takes no arguments");
pub const MAIL_SYNTAX: Reply = Reply::new(501, "5.5.4", "syntax: MAIL FROM:<address>");
pub const RCPT_SYNTAX: Reply = Reply::new(501, "5.5.4", "syntax: RCPT TO:<address>");
// RFC 3463: X.1.7 is the sender's address syntax, X.1.3 a recipient's.
pub const BAD_SENDER_ADDRESS: Reply = Reply::new(501, "5.1.7", "bad address syntax");
pub const BAD_RCPT_ADDRESS: Reply = Reply::new(501, "5.1.3", "bad address syntax");
pub const EMPTY_RCPT: Reply = Reply::new(501, "5.1.3", "empty recipient address");
pub const SENDER_TOO_LONG: Reply = Reply::new(501, "5.1.7", "address too long");
pub const RCPT_TOO_LONG: Reply = Reply::new(501, "5.1.3", "address too long");
/// RFC 6531 §3.7.4.1: a non-ASCII address in a transaction without
/// `MAIL … SMTPUTF8`.
pub const NON_ASCII_WITHOUT_SMTPUTF8: Reply = Reply::new(
    553,
    "5.6.7",
    "non-ASCII address requires MAIL FROM:<...> SMTPUTF8",
);
pub const UNKNOWN_PARAMETER: Reply = Reply::new(555, "5.5.4", "unrecognized or bad parameter");

pub const NESTED_MAIL: Reply = Reply::new(503, "5.5.1", "MAIL already given; RSET first");
pub const MAIL_FIRST: Reply = Reply::new(503, "5.5.1", "MAIL first");
pub const RCPT_FIRST: Reply = Reply::new(503, "5.5.1", "RCPT first");
/// DATA after every RCPT was refused (RFC 2920 §3.1).
pub const NO_VALID_RCPTS: Reply = Reply::new(554, "5.5.1", "no valid recipients");
pub const AUTH_NOT_AVAILABLE: Reply = Reply::new(503, "5.5.1", "AUTH not available");

// ---- envelope policy ----------------------------------------------------

pub const SIZE_EXCEEDED: Reply = Reply::new(
    552,
    "5.3.4",
    "sorry, that message size exceeds my databytes limit",
);
pub const NOT_IN_RCPTHOSTS: Reply = Reply::new(
    553,
    "5.7.1",
    "sorry, that domain isn't in my list of allowed rcpthosts",
);
pub const SENDER_ROUTING: Reply = Reply::new(
    553,
    "5.7.1",
    "sorry, sender-specified routing (%, ! or @ in the local part) is not allowed",
);
pub const BADMAILFROM: Reply = Reply::new(
    553,
    "5.7.1",
    "sorry, your envelope sender is in my badmailfrom list",
);
pub const NO_RCPTHOSTS: Reply = Reply::new(
    451,
    "4.3.5",
    "sorry, this server has no rcpthosts and accepts no mail",
);
pub const TOO_MANY_RCPTS: Reply = Reply::new(452, "4.5.3", "too many recipients");

// ---- DATA outcomes ------------------------------------------------------

pub const TOO_MANY_HOPS: Reply = Reply::new(554, "5.4.6", "too many hops, this message is looping");
pub const BARE_LF: Reply = Reply::new(451, "4.5.0", "See https://cr.yp.to/docs/smtplf.html.");
pub const BARE_CR: Reply = Reply::new(
    451,
    "4.5.0",
    "bare CR in message; lines must end with <CR><LF>. See https://cr.yp.to/docs/smtplf.html.",
);

// qmail-queue exit codes (qmail-queue(8), qmail.c qmail_close).
pub const QQ_ADDRESS_TOO_LONG: Reply = Reply::new(554, "5.1.3", "envelope address too long for qq");
pub const QQ_PERM_REJECTED: Reply =
    Reply::new(554, "5.3.0", "mail server permanently rejected message");
pub const QQ_OUT_OF_MEMORY: Reply = Reply::new(451, "4.3.0", "qq out of memory");
pub const QQ_TIMEOUT: Reply = Reply::new(451, "4.3.0", "qq timeout");
pub const QQ_WRITE_ERROR: Reply = Reply::new(451, "4.3.0", "qq write error or disk full");
pub const QQ_READ_ERROR: Reply = Reply::new(451, "4.3.0", "qq read error");
pub const QQ_CONFIG: Reply = Reply::new(451, "4.3.0", "qq unable to read configuration");
pub const QQ_NETWORK: Reply = Reply::new(451, "4.3.0", "qq trouble making network connection");
pub const QQ_HOME: Reply = Reply::new(451, "4.3.0", "qq trouble in home directory");
pub const QQ_QUEUE_FILES: Reply = Reply::new(451, "4.3.0", "qq trouble creating files in queue");
pub const QQ_TEMP_REJECTED: Reply =
    Reply::new(451, "4.3.0", "mail server temporarily rejected message");
pub const QQ_REMOTE_TIMEOUT: Reply =
    Reply::new(451, "4.4.1", "connection to mail server timed out");
pub const QQ_REMOTE_REJECTED: Reply =
    Reply::new(451, "4.4.1", "connection to mail server rejected");
pub const QQ_COMMUNICATION: Reply =
    Reply::new(451, "4.4.2", "communication with mail server failed");
pub const QQ_BUG: Reply = Reply::new(451, "4.3.0", "qq internal bug");
pub const QQ_EXEC: Reply = Reply::new(451, "4.3.0", "unable to exec qq");
pub const QQ_PERM_PROBLEM: Reply = Reply::new(554, "5.3.0", "qq permanent problem");
pub const QQ_TEMP_PROBLEM: Reply = Reply::new(451, "4.3.0", "qq temporary problem");
pub const QQ_CRASHED: Reply = Reply::new(451, "4.3.0", "qq crashed");
/// Could not start qmail-queue at all (fork or pipe failure).
pub const QQ_START: Reply = Reply::new(451, "4.3.0", "qq temporary problem");

// ---- recipient checks of the combined patches (src/core/rcpt_checks.rs) ------

/// jms1 / sagredo validrcptto: the recipient is not in the list.
pub const NOT_IN_VALIDRCPTTO: Reply = Reply::new(
    553,
    "5.1.1",
    "sorry, this recipient is not in my validrcptto list",
);
/// `RELAYREJ` / `control/rejectrelaytest`: `@`, `%` or `!` in the local
/// part, from any client.
pub const RELAYREJ: Reply = Reply::new(553, "5.7.1", "sorry, we don't relay");
/// `control/badhelo` (or `badhelonorelay`) matched the HELO/EHLO name.
pub const BAD_HELO: Reply = Reply::new(553, "5.7.1", "sorry, your HELO host name has been denied");
/// `control/badrcptto` (or `badrcpttonorelay`) lists the recipient.
pub const BAD_RCPT: Reply = Reply::new(
    553,
    "5.7.1",
    "sorry, your envelope recipient has been denied",
);
/// RCPTCHECK exit 100 without a reply of its own.
pub const RCPTCHECK_NO_MAILBOX: Reply =
    Reply::new(553, "5.1.1", "sorry, no mailbox here by that name");
/// RCPTCHECK exit 111 without a reply of its own.
pub const RCPTCHECK_TEMP: Reply = Reply::new(451, "4.3.0", "unable to verify recipient");
/// RCPTCHECK exit 113 without a reply of its own: the session ends.
pub const RCPTCHECK_OVERLIMIT: Reply =
    Reply::new(421, "4.7.0", "you have exceeded your messaging limits");
/// RCPTCHECK could not run, exited 120 or died of a signal.
pub const RCPTCHECK_FAILED: Reply = Reply::new(451, "4.3.0", "unable to execute recipient check");
/// RCPTCHECK did not finish within `RCPTCHECK_TIMEOUT`.
pub const RCPTCHECK_TIMEOUT: Reply = Reply::new(451, "4.4.3", "recipient check timed out");
/// `VALIDRCPTTO_LIMIT` / `BRTLIMIT` reached: the session ends.
pub const TOO_MANY_INVALID_RCPTS: Reply =
    Reply::new(421, "4.7.0", "too many invalid addresses, goodbye");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_enhanced_code() {
        let mut v = Vec::new();
        MAIL_FIRST.render(&mut v);
        assert_eq!(v, b"503 5.5.1 MAIL first\r\n");
    }

    #[test]
    fn renders_without_enhanced_code() {
        let mut v = Vec::new();
        DATA_GO_AHEAD.render(&mut v);
        assert_eq!(v, b"354 go ahead, end data with <CR><LF>.<CR><LF>\r\n");
        v.clear();
        render_line(&mut v, 250, true, None, b"PIPELINING");
        assert_eq!(v, b"250-PIPELINING\r\n");
    }

    #[test]
    fn error_classification() {
        assert!(!OK.is_error());
        assert!(QQ_TEMP_PROBLEM.is_error());
        assert!(UNIMPLEMENTED.is_error());
    }
}
