//! SMTP AUTH mechanism exchanges (RFC 4954): PLAIN (RFC 4616), LOGIN
//! (draft-murchison-sasl-login) and CRAM-MD5 (RFC 2195), as small state
//! machines: the client's line in, a challenge, credentials, a cancel or a
//! malformed response out. Pure: no I/O, no randomness (the CRAM-MD5
//! challenge is given by the caller).
//!
//! Credentials are checked here only for what would let them forge the
//! checkpassword record (`user\0secret\0timestamp\0`, at most 512 bytes): a
//! NUL anywhere, an empty user or secret, or a record too long is refused
//! before any back-end sees it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// checkpassword reads at most this many bytes from fd 3.
pub const MAX_RECORD: usize = 512;

/// Longest user name a log line shows.
pub const MAX_LOGGED_USER: usize = 64;

/// `user="name"` for a log line, or `user=<invalid>` when the name is
/// empty, longer than [`MAX_LOGGED_USER`] bytes, or holds anything but
/// printable ASCII (a NUL, a control character…): a password typed into
/// the user field, or a forged `alice\0password` record, never reaches the
/// log.
pub fn log_user(user: &[u8]) -> String {
    let well_formed = !user.is_empty()
        && user.len() <= MAX_LOGGED_USER
        && user.iter().all(|&b| (0x20..0x7f).contains(&b));
    if well_formed {
        format!("user=\"{}\"", crate::smtp::session::printable(user))
    } else {
        "user=<invalid>".into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
}

impl Mechanism {
    /// The mechanism named in an AUTH command (case-insensitive).
    pub fn parse(name: &[u8]) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5]
            .into_iter()
            .find(|m| m.name().as_bytes().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
        }
    }
}

/// What a client proved, to hand to checkpassword. The secret is the
/// password, or the hex HMAC-MD5 digest for CRAM-MD5 (with the challenge
/// as the timestamp). Never printed: `Debug` shows the user only, and the
/// secret is overwritten when dropped.
pub struct Credentials {
    pub mechanism: Mechanism,
    pub user: Vec<u8>,
    secret: Vec<u8>,
    timestamp: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        wipe(&mut self.secret);
    }
}

/// Overwrite a buffer that held a secret.
pub fn wipe(v: &mut Vec<u8>) {
    v.fill(0);
    // Keep the zeroing from being optimised away as a dead store.
    std::hint::black_box(&*v);
    v.clear();
}

impl Credentials {
    /// The checkpassword record `user\0secret\0timestamp\0`, into `out`.
    pub fn record(&self, out: &mut Vec<u8>) {
        for field in [&self.user, &self.secret, &self.timestamp] {
            out.extend_from_slice(field);
            out.push(0);
        }
    }

    fn new(
        mechanism: Mechanism,
        user: Vec<u8>,
        mut secret: Vec<u8>,
        timestamp: Vec<u8>,
    ) -> Result<Credentials, Failure> {
        let forged = |v: &[u8]| v.contains(&0);
        let bad = user.is_empty()
            || secret.is_empty()
            || forged(&user)
            || forged(&secret)
            || forged(&timestamp)
            || user.len() + secret.len() + timestamp.len() + 3 > MAX_RECORD;
        if bad {
            wipe(&mut secret);
            return Err(Failure::Invalid { user });
        }
        Ok(Credentials {
            mechanism,
            user,
            secret,
            timestamp,
        })
    }
}

/// Why an exchange ended without credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client sent `*` (RFC 4954 §4): 501.
    Cancelled,
    /// Not base64, or not the mechanism's format: 501.
    Malformed,
    /// An initial response to a mechanism where the server speaks first
    /// (CRAM-MD5): 501 5.7.0 (RFC 4954 §4).
    ClientFirst,
    /// Well-formed but unusable credentials (NUL, empty, too long): an
    /// authentication failure like a wrong password, never shown to a
    /// back-end. Carries the user name for the log line, if known.
    Invalid { user: Vec<u8> },
}

/// Where an exchange waits for the client's next line.
#[derive(Debug)]
pub enum Exchange {
    /// PLAIN without an initial response: waiting for it.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password.
    LoginPassword { user: Vec<u8> },
    /// CRAM-MD5: waiting for `user digest` to our challenge.
    CramMd5 { challenge: Vec<u8> },
}

/// The next move in an exchange.
#[derive(Debug)]
pub enum Step {
    /// Send `334 <base64 of .0>` and wait in `.1`.
    Challenge(Vec<u8>, Exchange),
    /// The client has answered: check these.
    Done(Credentials),
    Failed(Failure),
}

/// Decode one client response: `*` cancels, `=` is an empty response
/// (RFC 4954 §4), anything else must be strict base64.
fn decode(line: &[u8]) -> Result<Vec<u8>, Failure> {
    match line {
        b"*" => Err(Failure::Cancelled),
        b"=" => Ok(Vec::new()),
        _ => STANDARD.decode(line).map_err(|_| Failure::Malformed),
    }
}

/// Begin `mechanism`, with the initial response if the AUTH command had
/// one. `challenge` makes a fresh CRAM-MD5 challenge.
pub fn start(
    mechanism: Mechanism,
    initial: Option<&[u8]>,
    challenge: impl FnOnce() -> Vec<u8>,
) -> Step {
    match (mechanism, initial) {
        (Mechanism::Plain, None) => Step::Challenge(Vec::new(), Exchange::Plain),
        (Mechanism::Login, None) => Step::Challenge(b"Username:".to_vec(), Exchange::LoginUser),
        // RFC 2195: the server speaks first; an initial response is a
        // protocol error.
        (Mechanism::CramMd5, Some(_)) => Step::Failed(Failure::ClientFirst),
        (Mechanism::CramMd5, None) => {
            let c = challenge();
            Step::Challenge(c.clone(), Exchange::CramMd5 { challenge: c })
        }
        (Mechanism::Plain, Some(r)) => respond(Exchange::Plain, r),
        (Mechanism::Login, Some(r)) => respond(Exchange::LoginUser, r),
    }
}

/// Feed the client's response line (without CRLF) to the exchange.
pub fn respond(exchange: Exchange, line: &[u8]) -> Step {
    let mut data = match decode(line) {
        Ok(d) => d,
        Err(f) => return Step::Failed(f),
    };
    let step = match exchange {
        Exchange::Plain => plain(&data),
        Exchange::LoginUser => {
            if data.contains(&0) || data.is_empty() {
                Step::Failed(Failure::Invalid {
                    user: std::mem::take(&mut data),
                })
            } else {
                Step::Challenge(
                    b"Password:".to_vec(),
                    Exchange::LoginPassword {
                        user: std::mem::take(&mut data),
                    },
                )
            }
        }
        Exchange::LoginPassword { user } => {
            match Credentials::new(Mechanism::Login, user, data.clone(), Vec::new()) {
                Ok(c) => Step::Done(c),
                Err(f) => Step::Failed(f),
            }
        }
        Exchange::CramMd5 { challenge } => cram_md5(&data, challenge),
    };
    wipe(&mut data);
    step
}

/// RFC 4616: `authzid\0authcid\0passwd`; authzid empty or the authcid.
fn plain(data: &[u8]) -> Step {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd)) = (parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed(Failure::Malformed);
    };
    if !authzid.is_empty() && authzid != authcid {
        // Acting as someone else is not supported.
        return Step::Failed(Failure::Invalid {
            user: authcid.to_vec(),
        });
    }
    match Credentials::new(
        Mechanism::Plain,
        authcid.to_vec(),
        passwd.to_vec(),
        Vec::new(),
    ) {
        Ok(c) => Step::Done(c),
        Err(f) => Step::Failed(f),
    }
}

/// RFC 2195: `user SP digest`, the digest 32 lower-case hex digits.
fn cram_md5(data: &[u8], challenge: Vec<u8>) -> Step {
    let Some(sp) = data.iter().rposition(|&b| b == b' ') else {
        return Step::Failed(Failure::Malformed);
    };
    let (user, digest) = (&data[..sp], &data[sp + 1..]);
    if digest.len() != 32 || !digest.iter().all(u8::is_ascii_hexdigit) {
        return Step::Failed(Failure::Malformed);
    }
    match Credentials::new(
        Mechanism::CramMd5,
        user.to_vec(),
        digest.to_ascii_lowercase(),
        challenge,
    ) {
        Ok(c) => Step::Done(c),
        Err(f) => Step::Failed(f),
    }
}

/// Base64 for a `334` challenge.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_user_names_only_well_formed_users() {
        assert_eq!(log_user(b"alice"), "user=\"alice\"");
        assert_eq!(log_user(b"alice@example.org"), "user=\"alice@example.org\"");
        assert_eq!(
            log_user(&[b'a'; 64]),
            format!("user=\"{}\"", "a".repeat(64))
        );
        for bad in [
            &b"alice\0wonderland"[..],
            b"alice\x01",
            b"tab\tuser",
            b"caf\xc3\xa9",
            b"",
            &[b'a'; 65],
        ] {
            assert_eq!(log_user(bad), "user=<invalid>", "{bad:?}");
        }
    }

    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        STANDARD.encode(s).into_bytes()
    }

    fn done(step: Step) -> Credentials {
        match step {
            Step::Done(c) => c,
            other => panic!("not done: {other:?}"),
        }
    }

    fn record(c: &Credentials) -> Vec<u8> {
        let mut v = Vec::new();
        c.record(&mut v);
        v
    }

    fn no_challenge() -> Vec<u8> {
        unreachable!()
    }

    #[test]
    fn plain_initial_and_continued() {
        let c = done(start(
            Mechanism::Plain,
            Some(&b64(b"\0alice\0secret")),
            no_challenge,
        ));
        assert_eq!(record(&c), b"alice\0secret\0\0");
        let c = done(start(
            Mechanism::Plain,
            Some(&b64(b"alice\0alice\0pw")),
            no_challenge,
        ));
        assert_eq!(c.user, b"alice");
        let Step::Challenge(ch, ex) = start(Mechanism::Plain, None, no_challenge) else {
            panic!()
        };
        assert!(ch.is_empty());
        let c = done(respond(ex, &b64(b"\0bob\0pw")));
        assert_eq!(record(&c), b"bob\0pw\0\0");
        // The password may itself contain NUL only if it would forge: the
        // third field is everything after the second NUL.
        let s = start(Mechanism::Plain, Some(&b64(b"\0bob\0pw\0x")), no_challenge);
        assert!(matches!(s, Step::Failed(Failure::Invalid { .. })), "{s:?}");
    }

    #[test]
    fn plain_refusals() {
        let cases: &[(&[u8], bool)] = &[
            (b"*", false),
            (b"=", true),
            (b"not base64!", true),
            (b"AAAA=", true),
        ];
        for (line, malformed) in cases {
            let s = start(Mechanism::Plain, Some(line), no_challenge);
            match s {
                Step::Failed(Failure::Malformed) => assert!(malformed, "{line:?}"),
                Step::Failed(Failure::Cancelled) => assert!(!malformed, "{line:?}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
        for (data, user) in [
            (&b"carol\0alice\0pw"[..], &b"alice"[..]),
            (b"\0alice\0", b"alice"),
            (b"\0\0pw", b""),
        ] {
            match start(Mechanism::Plain, Some(&b64(data)), no_challenge) {
                Step::Failed(Failure::Invalid { user: u }) => assert_eq!(u, user),
                other => panic!("{data:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn login_cannot_forge_the_record() {
        // The known patch bug: a user name `alice\0wonderland` would make
        // checkpassword see password "wonderland".
        let s = start(
            Mechanism::Login,
            Some(&b64(b"alice\0wonderland")),
            no_challenge,
        );
        assert!(matches!(s, Step::Failed(Failure::Invalid { .. })), "{s:?}");
        let Step::Challenge(ch, ex) = start(Mechanism::Login, None, no_challenge) else {
            panic!()
        };
        assert_eq!(ch, b"Username:");
        let Step::Challenge(ch, ex) = respond(ex, &b64(b"alice")) else {
            panic!()
        };
        assert_eq!(ch, b"Password:");
        let s = respond(ex, &b64(b"pw\0x"));
        assert!(matches!(s, Step::Failed(Failure::Invalid { .. })), "{s:?}");
        let Step::Challenge(_, ex) = start(Mechanism::Login, Some(&b64(b"alice")), no_challenge)
        else {
            panic!()
        };
        let c = done(respond(ex, &b64(b"wonderland")));
        assert_eq!(record(&c), b"alice\0wonderland\0\0");
        assert!(!format!("{c:?}").contains("wonderland"));
    }

    #[test]
    fn record_never_exceeds_512_bytes() {
        let long = vec![b'p'; 600];
        let mut data = b"\0alice\0".to_vec();
        data.extend_from_slice(&long);
        let s = start(Mechanism::Plain, Some(&b64(&data)), no_challenge);
        assert!(matches!(s, Step::Failed(Failure::Invalid { .. })));
        let mut data = b"\0alice\0".to_vec();
        data.extend_from_slice(&vec![b'p'; MAX_RECORD - 5 - 3]);
        let c = done(start(Mechanism::Plain, Some(&b64(&data)), no_challenge));
        assert_eq!(record(&c).len(), MAX_RECORD);
    }

    #[test]
    fn cram_md5() {
        let Step::Challenge(ch, ex) = start(Mechanism::CramMd5, None, || b"<1.2@mx>".to_vec())
        else {
            panic!()
        };
        assert_eq!(ch, b"<1.2@mx>");
        let c = done(respond(ex, &b64(b"alice 0123456789ABCDEF0123456789abcdef")));
        assert_eq!(
            record(&c),
            b"alice\x000123456789abcdef0123456789abcdef\0<1.2@mx>\0"
        );
        for bad in [
            &b"alice"[..],
            b"alice 0123",
            b"alice zz23456789abcdef0123456789abcdef",
        ] {
            let ex = Exchange::CramMd5 {
                challenge: b"<c>".to_vec(),
            };
            assert!(
                matches!(respond(ex, &b64(bad)), Step::Failed(Failure::Malformed)),
                "{bad:?}"
            );
        }
        let s = start(Mechanism::CramMd5, Some(b"abcd"), || b"<c>".to_vec());
        assert!(matches!(s, Step::Failed(Failure::ClientFirst)));
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(Mechanism::parse(b"cram-md5"), Some(Mechanism::CramMd5));
        assert_eq!(Mechanism::parse(b"Plain"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::parse(b"DIGEST-MD5"), None);
    }
}
