//! The recipient checks of the combined patches (jms1, sagredo), as pure
//! decisions: valid-recipient look-ups (jms1's `VALIDRCPTTO_CDB`, sagredo's
//! `control/validrcptto` + `morevalidrcptto.cdb`), and the per-connection
//! counters behind `VALIDRCPTTO_LIMIT`.
//!
//! Nothing here opens a file: the look-ups are closures the session builds
//! from its [`Lookups`](crate::smtp::session::Lookups), so every rule is
//! table-tested below.

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
        why,
    };
    if !cfg.validrcptto() {
        return Ok(pass("no validrcptto list".into()));
    }
    let addr = addr.to_ascii_lowercase();
    let show = crate::smtp::session::printable;
    let mut refused_by = None;
    if cfg.sagredo_list.is_some() || cfg.sagredo_cdb {
        match sagredo_lookup(&addr, sagredo)? {
            (Listed::Accept, Some(k)) => {
                if cfg.log > 0 {
                    log.push(format!(
                        "validrcptto: \"{}\" found \"{}\"",
                        show(&addr),
                        show(&k)
                    ));
                }
                return Ok(pass(format!(
                    "accepted by validrcptto/morevalidrcptto.cdb entry \"{}\"",
                    show(&k)
                )));
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
            (true, Some(k)) => {
                if cfg.log > 0 {
                    log.push(format!(
                        "validrcptto: \"{}\" found \"{}\"",
                        show(&addr),
                        show(&k)
                    ));
                }
                return Ok(pass(format!(
                    "accepted by VALIDRCPTTO_CDB key \"{}\"",
                    show(&k)
                )));
            }
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
    if cfg.log > 0 {
        log.push(format!("validrcptto: \"{}\" reject: {why}", show(&addr)));
    }
    if cfg.jms1_cdb && cfg.jms1_limit > 0 && counters.invalid >= cfg.jms1_limit {
        return Ok(Verdict {
            reply: Some(reply::TOO_MANY_INVALID_RCPTS),
            close: true,
            why: format!("{why}; VALIDRCPTTO_LIMIT {} reached", cfg.jms1_limit),
        });
    }
    Ok(Verdict {
        reply: Some(reply::NOT_IN_VALIDRCPTTO),
        close: false,
        why,
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
