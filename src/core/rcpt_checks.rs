//! The recipient checks of the combined patches (jms1, sagredo), as pure
//! decisions: valid-recipient look-ups (jms1's `VALIDRCPTTO_CDB`, sagredo's
//! `control/validrcptto` + `morevalidrcptto.cdb`), the per-connection
//! counters behind `VALIDRCPTTO_LIMIT` and `BRTLIMIT`, `RELAYREJ`,
//! `badhelo` (regular expressions), `badmailfrom`, `badrcptto` and the
//! `…norelay` lists (qregex: addresses, `@domain` or regular expressions).
//!
//! Nothing here opens a file: the look-ups are closures the session builds
//! from its [`Lookups`](crate::smtp::session::Lookups), so every rule is
//! table-tested below.

use regex_lite::{Regex, RegexBuilder};

use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{LookupError, NameSet};

/// jms1's default `VALIDRCPTTO_LIMIT`.
pub const DEFAULT_VALIDRCPTTO_LIMIT: u32 = 10;

/// The recipient-check settings, read once at connect time. The default
/// configures nothing, and then no check runs.
#[derive(Debug, Clone, Default)]
pub struct RcptChecks {
    /// jms1: `VALIDRCPTTO_CDB` names a cdb (the edge holds it open).
    pub jms1_cdb: bool,
    /// jms1: `VALIDRCPTTO_LIMIT` (0 = never): invalid recipients per
    /// connection before `421` and the end of the session.
    pub jms1_limit: u32,
    /// jms1: `VALIDRCPTTO_LOG` (1 the result, 2 also every key tried).
    pub log: u8,
    /// sagredo: `control/validrcptto` (or the file `VALIDRCPTTO` names).
    pub sagredo_list: Option<NameSet>,
    /// sagredo: `control/morevalidrcptto.cdb` exists (the edge holds it).
    pub sagredo_cdb: bool,
    /// sagredo: `BRTLIMIT` / `control/brtlimit` (0 = off): refused
    /// recipients per connection before `421` at the next RCPT.
    pub brtlimit: u32,
    /// jms1 `RELAYREJ` / sagredo `control/rejectrelaytest`.
    pub relayrej: bool,
    /// `control/badhelo` (all clients).
    pub badhelo: Option<RegexList>,
    /// sagredo `control/badhelonorelay` (clients that may not relay).
    pub badhelo_norelay: Option<RegexList>,
    /// `LOGREGEX`: name the matching pattern in the log.
    pub logregex: bool,
    /// `control/badrcptto` (all clients).
    pub badrcptto: AddrList,
    /// `control/badrcpttonorelay` (clients that may not relay).
    pub badrcptto_norelay: AddrList,
    /// `control/badmailfromnorelay` (clients that may not relay).
    pub badmailfrom_norelay: AddrList,
    /// `MAXRCPT` / `control/maxrcpt`: recipients per message (replaces
    /// the built-in 1000).
    pub maxrcpt: Option<usize>,
    /// `RCPTCHECK`: the program asked about each recipient.
    pub rcptcheck: Option<Vec<u8>>,
    /// `RCPTCHECKRELAYCLIENT` non-zero: ask it for relay and
    /// authenticated clients too.
    pub rcptcheck_relay: bool,
    /// `RCPTCHECK_TIMEOUT`, seconds.
    pub rcptcheck_timeout: u64,
}

/// Lines of extended regular expressions, matched case-insensitively and
/// unanchored; a leading `!` negates a line (it matches when the
/// expression does not).
#[derive(Debug, Clone, Default)]
pub struct RegexList {
    entries: Vec<(bool, Regex, String)>,
}

/// Most memory one compiled pattern may take.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl RegexList {
    /// Compile the lines; a line that does not compile is left out and
    /// returned as an error text (logged at connect, reported by
    /// `--check`), never fatal.
    pub fn compile(lines: &[Vec<u8>]) -> (RegexList, Vec<String>) {
        let (list, errors) = RegexList::compile_lines(lines.iter().map(Vec::as_slice));
        let errors = errors
            .into_iter()
            .map(|(text, e)| format!("pattern \"{text}\" does not compile: {e}"))
            .collect();
        (list, errors)
    }

    /// Compile each line (a leading `!` negates); the lines that do not
    /// compile come back with the compiler's error.
    fn compile_lines<'a>(
        lines: impl Iterator<Item = &'a [u8]>,
    ) -> (RegexList, Vec<(String, String)>) {
        let mut list = RegexList::default();
        let mut errors = Vec::new();
        for line in lines {
            let text = String::from_utf8_lossy(line).into_owned();
            let (negate, pattern) = match text.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, text.as_str()),
            };
            match RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
            {
                Ok(re) => list.entries.push((negate, re, text.clone())),
                Err(e) => errors.push((text, e.to_string().replace('\n', " "))),
            }
        }
        (list, errors)
    }

    /// The first line that matches `s` (bytes that are not UTF-8 count
    /// as U+FFFD).
    pub fn matches(&self, s: &[u8]) -> Option<&str> {
        let s = String::from_utf8_lossy(s);
        self.entries
            .iter()
            .find(|(negate, re, _)| re.is_match(&s) != *negate)
            .map(|(_, _, text)| text.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What the HELO/EHLO name earned; computed at each HELO/EHLO, enforced
/// at every RCPT until the next one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeloFlags {
    /// Matched `badhelo`: the pattern.
    pub bad: Option<String>,
    /// Matched `badhelonorelay`: the pattern.
    pub bad_norelay: Option<String>,
}

/// Judge a HELO/EHLO name against `badhelo` and `badhelonorelay`.
pub fn helo_flags(cfg: &RcptChecks, name: &[u8]) -> HeloFlags {
    let m = |l: &Option<RegexList>| l.as_ref().and_then(|l| l.matches(name)).map(str::to_string);
    HeloFlags {
        bad: m(&cfg.badhelo),
        bad_norelay: m(&cfg.badhelo_norelay),
    }
}

/// A qregex address list: `control/badmailfrom`, `badmailfromnorelay`,
/// `badrcptto`, `badrcpttonorelay`. Every line matches an address equal
/// to it or, for a line `@domain`, an address in that domain (qmail's
/// `bmfcheck`), case-insensitively. A line with a regular-expression
/// metacharacter other than `.` (`\ ^ $ * + ? ( ) [ ] { } |`), or with a
/// leading `!`, is also read as an extended regular expression,
/// case-insensitive and unanchored, as qregex reads it; a leading `!`
/// negates it (the line matches when the expression does not), as
/// sagredo's `bmcheck` does for all these files. A plain address stays an
/// exact entry, as in qmail (qregex would also read `joe@x.org` as a
/// pattern matching `billyjoe@x.org`; refusing more than the line says is
/// the worse surprise for a drop-in). The null sender is never matched.
#[derive(Debug, Clone, Default)]
pub struct AddrList {
    /// Every line, lower-cased, for the exact and `@domain` test.
    exact: NameSet,
    /// The lines read as regular expressions that compile.
    regexes: RegexList,
    lines: usize,
}

/// The bytes that make a line a regular expression (other than `.`).
const REGEX_META: &[u8] = b"\\^$*+?()[]{}|";

impl AddrList {
    /// Read the lines of one file; the errors are lines that look like
    /// regular expressions but do not compile (they still match as an
    /// address or `@domain`), for the log and `--check`.
    pub fn new(lines: Vec<Vec<u8>>) -> (AddrList, Vec<String>) {
        let special = lines
            .iter()
            .filter(|l| l.first() == Some(&b'!') || l.iter().any(|b| REGEX_META.contains(b)));
        let (regexes, errors) = RegexList::compile_lines(special.map(Vec::as_slice));
        let errors = errors
            .into_iter()
            .map(|(text, e)| {
                format!(
                    "line \"{text}\" is not a valid regular expression ({e}): matched as an address or @domain only"
                )
            })
            .collect();
        let list = AddrList {
            lines: lines.len(),
            exact: NameSet::new(lines),
            regexes,
        };
        (list, errors)
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Lines in all.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Lines read as regular expressions (and compiled).
    pub fn regex_count(&self) -> usize {
        self.regexes.len()
    }

    /// The (lower-cased) line that matches `addr`, if any; never the
    /// null sender.
    pub fn matches(&self, addr: &[u8]) -> Option<String> {
        if self.is_empty() || addr.is_empty() {
            return None;
        }
        let lower = addr.to_ascii_lowercase();
        let show = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
        if self.exact.contains_lower(&lower) {
            return Some(show(&lower));
        }
        if let Some(at) = lower.iter().rposition(|&b| b == b'@') {
            if self.exact.contains_lower(&lower[at..]) {
                return Some(show(&lower[at..]));
            }
        }
        self.regexes.matches(addr).map(str::to_string)
    }
}

/// `badmailfrom`, then `badmailfromnorelay` for a client that may not
/// relay (asked at MAIL): the file and the line that refuse the sender.
pub fn sender_refused(
    badmailfrom: &AddrList,
    cfg: &RcptChecks,
    may_relay: bool,
    sender: &[u8],
) -> Option<(&'static str, String)> {
    if let Some(line) = badmailfrom.matches(sender) {
        return Some(("badmailfrom", line));
    }
    if may_relay {
        return None;
    }
    cfg.badmailfrom_norelay
        .matches(sender)
        .map(|line| ("badmailfromnorelay", line))
}

/// The checks of a recipient before the relay rules, in this order:
/// `BRTLIMIT` reached, `RELAYREJ`, `badhelo` (+`norelay`), `badrcptto`
/// (+`norelay`). `None`: go on. `may_relay`: `RELAYCLIENT` or AUTH.
pub fn before_relay(
    cfg: &RcptChecks,
    counters: &mut RcptCounters,
    helo: &HeloFlags,
    addr: &[u8],
    may_relay: bool,
    log: &mut Vec<String>,
) -> Option<Verdict> {
    let refuse = |r: Reply, why: String| {
        Some(Verdict {
            reply: Some(r),
            close: false,
            why,
            found: false,
        })
    };
    if cfg.brtlimit > 0 && counters.bad >= cfg.brtlimit {
        return Some(Verdict {
            reply: Some(reply::TOO_MANY_INVALID_RCPTS),
            close: true,
            why: format!("BRTLIMIT {} reached", cfg.brtlimit),
            found: false,
        });
    }
    if cfg.relayrej && relay_attempt(addr) {
        return refuse(
            reply::RELAYREJ,
            "RELAYREJ/rejectrelaytest: @, % or ! in the local part".into(),
        );
    }
    let helo_pattern = helo.bad.as_ref().map(|p| ("badhelo", p)).or_else(|| {
        helo.bad_norelay
            .as_ref()
            .filter(|_| !may_relay)
            .map(|p| ("badhelonorelay", p))
    });
    if let Some((file, pattern)) = helo_pattern {
        if cfg.logregex {
            log.push(format!("badhelo: refused by {file} pattern \"{pattern}\""));
        }
        return refuse(reply::BAD_HELO, format!("{file} pattern \"{pattern}\""));
    }
    let hit = cfg
        .badrcptto
        .matches(addr)
        .map(|l| ("badrcptto", l))
        .or_else(|| {
            (!may_relay)
                .then(|| cfg.badrcptto_norelay.matches(addr))
                .flatten()
                .map(|l| ("badrcpttonorelay", l))
        });
    if let Some((file, line)) = hit {
        counters.bad = counters.bad.saturating_add(1);
        if cfg.logregex {
            log.push(format!("badrcptto: refused by {file} line \"{line}\""));
        }
        return refuse(reply::BAD_RCPT, format!("{file} line \"{line}\""));
    }
    None
}

/// jms1/sagredo relay test: the part before the last `@` holds `@`, `%`
/// or `!` (without `@`: anywhere).
pub fn relay_attempt(addr: &[u8]) -> bool {
    let local = match addr.iter().rposition(|&b| b == b'@') {
        Some(at) => &addr[..at],
        None => addr,
    };
    local.iter().any(|&b| matches!(b, b'@' | b'%' | b'!'))
}

impl RcptChecks {
    /// Is any valid-recipient list configured?
    pub fn validrcptto(&self) -> bool {
        self.jms1_cdb || self.sagredo_list.is_some() || self.sagredo_cdb
    }
}

/// Per-connection counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct RcptCounters {
    /// Recipients refused by a validrcptto list (jms1's limit).
    pub invalid: u32,
    /// Recipients refused by validrcptto, badrcptto or rcpthosts
    /// (sagredo's `BRTLIMIT`).
    pub bad: u32,
}

/// What a sagredo list says of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Accept,
    Reject,
    /// Not listed: the next check decides.
    NotListed,
}

/// The outcome of a valid-recipient check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: the recipient may go on to the next check.
    pub reply: Option<Reply>,
    /// End the session after the reply.
    pub close: bool,
    /// Which rule decided, for the log and `--explain`.
    pub why: String,
    /// A validrcptto list accepted the recipient (sagredo's `RCPTFOUND`).
    pub found: bool,
}

/// jms1's look-up keys for a lower-cased address, in order: the address,
/// then the `-default` forms from the right (`a-b-c@d` → `a-b-default@d`,
/// `a-default@d`), then `@domain`. Without `@`, the address only.
pub fn jms1_keys(addr: &[u8]) -> Vec<Vec<u8>> {
    let mut keys = vec![addr.to_vec()];
    let Some(at) = addr.iter().rposition(|&b| b == b'@') else {
        return keys;
    };
    let (local, domain) = (&addr[..at], &addr[at..]);
    let mut end = local.len();
    while let Some(dash) = local[..end].iter().rposition(|&b| b == b'-') {
        let mut k = local[..=dash].to_vec();
        k.extend_from_slice(b"default");
        k.extend_from_slice(domain);
        if !keys.contains(&k) {
            keys.push(k);
        }
        end = dash;
    }
    keys.push(domain.to_vec());
    keys
}

/// What a jms1 look-up found: (valid, the key that decided, the keys
/// tried).
pub type Jms1Found = (bool, Option<Vec<u8>>, Vec<Vec<u8>>);

/// jms1: the first key found decides; a value starting with `-` refuses,
/// any other value (or none, the old format) accepts; no key found
/// refuses. Returns (valid, the key that decided, the keys tried).
pub fn jms1_lookup(
    addr: &[u8],
    mut get: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, LookupError>,
) -> Result<Jms1Found, LookupError> {
    let mut tried = Vec::new();
    for key in jms1_keys(addr) {
        let found = get(&key)?;
        tried.push(key.clone());
        if let Some(value) = found {
            return Ok((value.first() != Some(&b'-'), Some(key), tried));
        }
    }
    Ok((false, None, tried))
}

/// sagredo: keys `user@dom` (accept), `-user@dom` (refuse), `@dom`
/// (accept the domain), `-@dom` (refuse it), in that precedence.
pub fn sagredo_lookup(
    addr: &[u8],
    mut contains: impl FnMut(&[u8]) -> Result<bool, LookupError>,
) -> Result<(Listed, Option<Vec<u8>>), LookupError> {
    let neg = |k: &[u8]| {
        let mut v = b"-".to_vec();
        v.extend_from_slice(k);
        v
    };
    let mut keys = vec![(addr.to_vec(), Listed::Accept), (neg(addr), Listed::Reject)];
    if let Some(at) = addr.iter().rposition(|&b| b == b'@') {
        keys.push((addr[at..].to_vec(), Listed::Accept));
        keys.push((neg(&addr[at..]), Listed::Reject));
    }
    for (key, listed) in keys {
        if contains(&key)? {
            return Ok((listed, Some(key)));
        }
    }
    Ok((Listed::NotListed, None))
}

/// Both valid-recipient checks for a recipient of a client that may not
/// relay. `addr` is the address as it will be queued; the sagredo list is
/// asked first (its accept ends the check, as it skips chkuser there),
/// then jms1's cdb. `log` gets the lines `VALIDRCPTTO_LOG` asks for.
pub fn check_validrcptto(
    cfg: &RcptChecks,
    counters: &mut RcptCounters,
    addr: &[u8],
    sagredo: impl FnMut(&[u8]) -> Result<bool, LookupError>,
    jms1: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, LookupError>,
    log: &mut Vec<String>,
) -> Result<Verdict, LookupError> {
    let pass = |why: String| Verdict {
        reply: None,
        close: false,
        found: why.starts_with("accepted"),
        why,
    };
    if !cfg.validrcptto() {
        return Ok(pass("no validrcptto list".into()));
    }
    let addr = addr.to_ascii_lowercase();
    let show = crate::smtp::session::printable;
    let mut refused_by = None;
    // A list accepted the address: logged with VALIDRCPTTO_LOG.
    let accepted = |k: &[u8], by: &str, log: &mut Vec<String>| {
        if cfg.log > 0 {
            log.push(format!(
                "validrcptto: \"{}\" found \"{}\"",
                show(&addr),
                show(k)
            ));
        }
        pass(format!("accepted by {by} \"{}\"", show(k)))
    };
    if cfg.sagredo_list.is_some() || cfg.sagredo_cdb {
        match sagredo_lookup(&addr, sagredo)? {
            (Listed::Accept, Some(k)) => {
                return Ok(accepted(&k, "validrcptto/morevalidrcptto.cdb entry", log));
            }
            (Listed::Reject, Some(k)) => {
                refused_by = Some(format!(
                    "refused by validrcptto/morevalidrcptto.cdb entry \"{}\"",
                    show(&k)
                ));
            }
            _ => {}
        }
    }
    if refused_by.is_none() && cfg.jms1_cdb {
        let (valid, key, tried) = jms1_lookup(&addr, jms1)?;
        if cfg.log > 1 {
            for k in &tried {
                log.push(format!(
                    "validrcptto: \"{}\" tried \"{}\"",
                    show(&addr),
                    show(k)
                ));
            }
        }
        match (valid, key) {
            (true, Some(k)) => return Ok(accepted(&k, "VALIDRCPTTO_CDB key", log)),
            (_, Some(k)) => {
                refused_by = Some(format!(
                    "refused by VALIDRCPTTO_CDB key \"{}\" (value starts with -)",
                    show(&k)
                ));
            }
            (_, None) => refused_by = Some("not in VALIDRCPTTO_CDB".into()),
        }
    }
    let Some(why) = refused_by else {
        return Ok(pass(
            "not listed in validrcptto/morevalidrcptto.cdb: no decision".into(),
        ));
    };
    counters.invalid = counters.invalid.saturating_add(1);
    counters.bad = counters.bad.saturating_add(1);
    if cfg.log > 0 {
        log.push(format!("validrcptto: \"{}\" reject: {why}", show(&addr)));
    }
    if cfg.jms1_cdb && cfg.jms1_limit > 0 && counters.invalid >= cfg.jms1_limit {
        return Ok(Verdict {
            reply: Some(reply::TOO_MANY_INVALID_RCPTS),
            close: true,
            why: format!("{why}; VALIDRCPTTO_LIMIT {} reached", cfg.jms1_limit),
            found: false,
        });
    }
    Ok(Verdict {
        reply: Some(reply::NOT_IN_VALIDRCPTTO),
        close: false,
        why,
        found: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(a: &str) -> Vec<String> {
        jms1_keys(a.as_bytes())
            .into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect()
    }

    #[test]
    fn jms1_key_order() {
        assert_eq!(keys("bob@d"), ["bob@d", "@d"]);
        assert_eq!(
            keys("a-b-c@d"),
            ["a-b-c@d", "a-b-default@d", "a-default@d", "@d"]
        );
        assert_eq!(keys("postmaster"), ["postmaster"]);
        assert_eq!(keys("-x@d"), ["-x@d", "-default@d", "@d"]);
        assert_eq!(keys("a-@d"), ["a-@d", "a-default@d", "@d"]);
    }

    fn table(entries: &[(&str, &str)]) -> impl Fn(&[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        let m: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        move |k| Ok(m.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn jms1_values() {
        let t = table(&[
            ("bob@d", ""),
            ("x-default@d", "1"),
            ("@e", "-"),
            ("y@e", "ok"),
        ]);
        let valid = |a: &str| jms1_lookup(a.as_bytes(), &t).unwrap().0;
        assert!(valid("bob@d"));
        assert!(!valid("alice@d"));
        assert!(valid("x-anything@d"));
        assert!(valid("x-a-b@d"), "x-a-default misses, x-default hits");
        assert!(!valid("z@e"), "domain value starting with - refuses");
        assert!(valid("y@e"), "the exact key comes before @domain");
    }

    #[test]
    fn sagredo_precedence() {
        let set = NameSet::new(
            ["bob@d", "-bob@d", "-carol@d", "@d", "-@e", "dave@e"]
                .iter()
                .map(|s| s.as_bytes().to_vec()),
        );
        let f = |a: &str| {
            sagredo_lookup(a.as_bytes(), |k| Ok(set.contains_lower(k)))
                .unwrap()
                .0
        };
        assert_eq!(f("bob@d"), Listed::Accept, "accept beats refuse");
        assert_eq!(
            f("carol@d"),
            Listed::Reject,
            "address refusal beats @domain"
        );
        assert_eq!(f("erin@d"), Listed::Accept);
        assert_eq!(f("erin@e"), Listed::Reject);
        assert_eq!(f("dave@e"), Listed::Accept);
        assert_eq!(f("x@f"), Listed::NotListed);
    }

    #[test]
    fn limit_and_fall_through() {
        let cfg = RcptChecks {
            jms1_cdb: true,
            jms1_limit: 2,
            ..RcptChecks::default()
        };
        let mut c = RcptCounters::default();
        let mut log = Vec::new();
        let t = table(&[("ok@d", "")]);
        let none = |_: &[u8]| Ok(false);
        let v = check_validrcptto(&cfg, &mut c, b"OK@D", none, &t, &mut log).unwrap();
        assert_eq!(v.reply, None, "looked up lower-cased");
        let v = check_validrcptto(&cfg, &mut c, b"no@d", none, &t, &mut log).unwrap();
        assert_eq!(v.reply, Some(reply::NOT_IN_VALIDRCPTTO));
        let v = check_validrcptto(&cfg, &mut c, b"no@d", none, &t, &mut log).unwrap();
        assert_eq!(v.reply, Some(reply::TOO_MANY_INVALID_RCPTS));
        assert!(v.close);
        assert!(log.is_empty());

        // sagredo alone: not listed is no decision.
        let cfg = RcptChecks {
            sagredo_list: Some(NameSet::new([b"-@d".to_vec()])),
            log: 1,
            ..RcptChecks::default()
        };
        let mut c = RcptCounters::default();
        let set = cfg.sagredo_list.clone().unwrap();
        let s = |k: &[u8]| Ok(set.contains_lower(k));
        let nothing = |_: &[u8]| Ok(None);
        let v = check_validrcptto(&cfg, &mut c, b"x@e", s, nothing, &mut log).unwrap();
        assert_eq!(v.reply, None);
        let v = check_validrcptto(&cfg, &mut c, b"x@d", s, nothing, &mut log).unwrap();
        assert_eq!(v.reply, Some(reply::NOT_IN_VALIDRCPTTO));
        assert!(!v.close);
        assert_eq!(c.invalid, 1);
        assert_eq!(log.len(), 1, "{log:?}");
    }

    fn lines(l: &[&str]) -> Vec<Vec<u8>> {
        l.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn regex_lists() {
        let (l, errors) = RegexList::compile(&lines(&[
            "^localhost$",
            "[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+",
            "!\\.",
            "bad(",
            "[[:alpha:]]+\\.invalid$",
        ]));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("bad("), "{errors:?}");
        assert_eq!(l.len(), 4);
        assert_eq!(
            l.matches(b"LOCALHOST"),
            Some("^localhost$"),
            "case-insensitive"
        );
        assert!(
            l.matches(b"mylocalhost.example").is_none(),
            "anchored by the pattern only"
        );
        assert!(l.matches(b"host-1.2.3.4.example").is_some(), "unanchored");
        assert_eq!(l.matches(b"nodots"), Some("!\\."), "negation: no dot");
        assert!(l.matches(b"mx.example.org").is_none());
        assert!(l.matches(b"foo.INVALID").is_some());
        assert!(l.matches(b"\xff\x00binary").is_some(), "bytes never panic");
    }

    #[test]
    fn relayrej_test() {
        assert!(relay_attempt(b"a%b@d"));
        assert!(relay_attempt(b"a!b@d"));
        assert!(relay_attempt(b"\"a@b\"@d"));
        assert!(relay_attempt(b"a!b"));
        assert!(!relay_attempt(b"a@d!x"));
        assert!(!relay_attempt(b"a.b@d"));
    }

    #[test]
    fn before_relay_order_and_counts() {
        let (bh, _) = RegexList::compile(&lines(&["^evil"]));
        let (bhn, _) = RegexList::compile(&lines(&["dynamic"]));
        let cfg = RcptChecks {
            brtlimit: 2,
            relayrej: true,
            badhelo: Some(bh),
            badhelo_norelay: Some(bhn),
            badrcptto: AddrList::new(lines(&["x@d", "@spamtrap.d"])).0,
            badrcptto_norelay: AddrList::new(lines(&["y@d"])).0,
            ..RcptChecks::default()
        };
        let mut c = RcptCounters::default();
        let mut log = Vec::new();
        let ok = HeloFlags::default();
        let mut run = |helo: &HeloFlags, a: &str, relay: bool, c: &mut RcptCounters| {
            before_relay(&cfg, c, helo, a.as_bytes(), relay, &mut log).and_then(|v| v.reply)
        };
        assert_eq!(
            run(&ok, "a%b@d", true, &mut c),
            Some(reply::RELAYREJ),
            "relay clients too"
        );
        let evil = helo_flags(&cfg, b"EVIL.example");
        assert_eq!(run(&evil, "a@d", true, &mut c), Some(reply::BAD_HELO));
        let dynamic = helo_flags(&cfg, b"host.dynamic.example");
        assert_eq!(dynamic.bad, None);
        assert_eq!(
            run(&dynamic, "a@d", true, &mut c),
            None,
            "norelay: relay client passes"
        );
        assert_eq!(run(&dynamic, "a@d", false, &mut c), Some(reply::BAD_HELO));
        assert_eq!(c.bad, 0, "badhelo is not counted");
        assert_eq!(run(&ok, "y@d", true, &mut c), None);
        assert_eq!(run(&ok, "Y@D", false, &mut c), Some(reply::BAD_RCPT));
        assert_eq!(
            run(&ok, "z@SpamTrap.d", true, &mut c),
            Some(reply::BAD_RCPT)
        );
        assert_eq!(c.bad, 2);
        assert_eq!(
            run(&ok, "fine@d", false, &mut c),
            Some(reply::TOO_MANY_INVALID_RCPTS)
        );
    }

    #[test]
    fn addr_lists_match_as_qregex() {
        let (l, errors) = AddrList::new(lines(&[
            "Trap@Example.ORG",
            "@spam.test",
            "a.b@x.org",
            ".*@spam\\.example$",
            "^bounce-.*@",
            "a+b@plus.test",
            "broken(@x.test",
        ]));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("broken(@x.test"), "{errors:?}");
        assert!(!errors[0].contains("does not compile"), "a warning only");
        assert_eq!(l.len(), 7);
        assert_eq!(l.regex_count(), 3, "plain lines are not compiled");
        let m = |a: &str| l.matches(a.as_bytes());
        for (addr, want) in [
            // The classic tests: the whole address, @domain.
            ("trap@example.org", Some("trap@example.org")),
            ("TRAP@EXAMPLE.ORG", Some("trap@example.org")),
            ("x@SPAM.test", Some("@spam.test")),
            ("a.b@x.org", Some("a.b@x.org")),
            // A plain line is exact, as in qmail: no substrings, `.` a dot.
            ("bigtrap@example.org", None),
            ("x@sub.spam.test", None),
            ("aXb@x.org", None),
            // Regular expressions, case-insensitive, unanchored.
            ("anyone@Spam.Example", Some(".*@spam\\.example$")),
            ("anyone@spam.example.org", None),
            ("anyone@spamXexample", None),
            ("BOUNCE-123@list.test", Some("^bounce-.*@")),
            ("nobounce-1@list.test", None),
            // A line with metacharacters still matches itself exactly.
            ("a+b@plus.test", Some("a+b@plus.test")),
            ("aab@plus.test", Some("a+b@plus.test")),
            // Not compiled: exact only.
            ("broken(@x.test", Some("broken(@x.test")),
            ("broken@x.test", None),
            ("", None),
        ] {
            assert_eq!(m(addr).as_deref(), want, "{addr}");
        }
        // `!` negates (sagredo): every address outside those domains.
        let (neg, errors) = AddrList::new(lines(&["!@(example|spam)\\."]));
        assert!(errors.is_empty());
        assert!(neg.matches(b"x@other.test").is_some());
        assert!(neg.matches(b"x@example.net").is_none());
        assert!(neg.matches(b"").is_none(), "<>");
        assert!(AddrList::new(lines(&[".*"])).0.matches(b"").is_none(), "<>");
        assert!(AddrList::default().matches(b"a@b").is_none());
        assert!(l.matches(b"\xff\x00@spam.example").is_some(), "bytes");
    }

    #[test]
    fn senders_and_norelay() {
        let (bmf, _) = AddrList::new(lines(&["^spammer@"]));
        let cfg = RcptChecks {
            badmailfrom_norelay: AddrList::new(lines(&[".*@forged\\.test$"])).0,
            ..RcptChecks::default()
        };
        let f = |relay: bool, s: &str| sender_refused(&bmf, &cfg, relay, s.as_bytes());
        assert_eq!(
            f(true, "spammer@x.test"),
            Some(("badmailfrom", "^spammer@".to_string()))
        );
        assert_eq!(
            f(false, "a@forged.test"),
            Some(("badmailfromnorelay", ".*@forged\\.test$".to_string()))
        );
        assert_eq!(f(true, "a@forged.test"), None, "relay clients skip norelay");
        assert_eq!(f(false, ""), None, "the null sender");
    }

    #[test]
    fn lookup_errors_pass_up() {
        let cfg = RcptChecks {
            jms1_cdb: true,
            ..RcptChecks::default()
        };
        let mut c = RcptCounters::default();
        let r = check_validrcptto(
            &cfg,
            &mut c,
            b"a@b",
            |_| Ok(false),
            |_| Err(LookupError),
            &mut Vec::new(),
        );
        assert_eq!(r, Err(LookupError));
    }
}
