//! Edge: the files and variables of the recipient checks
//! ([`crate::core::rcpt_checks`]), read once at connect time. A file that is
//! not configured is not opened beyond the `open` that finds it missing.

use std::path::{Path, PathBuf};

use crate::core::policy::scan_ulong;
use crate::core::rcpt_checks::{AddrList, DEFAULT_VALIDRCPTTO_LIMIT, RcptChecks, RegexList};
use crate::io::control::{ControlError, Env, open_cdb, read_int, read_lines};
use crate::smtp::session::{LookupError, NameSet};

/// The cdb files the checks look things up in, held open.
#[derive(Default)]
pub struct RcptCdbs {
    /// jms1's `VALIDRCPTTO_CDB`.
    pub jms1: Option<cdb::CDB>,
    /// sagredo's `morevalidrcptto.cdb`.
    pub more: Option<cdb::CDB>,
}

impl RcptCdbs {
    pub fn validrcptto(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        match &self.jms1 {
            None => Ok(None),
            Some(db) => db.get(key).transpose().map_err(|_| LookupError),
        }
    }

    pub fn more_validrcptto(&self, key: &[u8]) -> Result<bool, LookupError> {
        match &self.more {
            None => Ok(false),
            Some(db) => Ok(db.get(key).transpose().map_err(|_| LookupError)?.is_some()),
        }
    }
}

/// A path from a variable: absolute as given, else below the qmail home
/// (qmail-smtpd runs there).
pub fn env_path(qmailhome: &Path, v: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    qmailhome.join(std::ffi::OsStr::from_bytes(v))
}

/// Where each file comes from: (jms1 cdb, sagredo list, sagredo cdb).
pub fn paths(env: &Env, qmailhome: &Path) -> (Option<PathBuf>, PathBuf, PathBuf) {
    let set = |name| env.get(name).filter(|v| !v.is_empty());
    let dir = qmailhome.join("control");
    (
        set("VALIDRCPTTO_CDB").map(|v| env_path(qmailhome, v)),
        set("VALIDRCPTTO").map_or_else(|| dir.join("validrcptto"), |v| env_path(qmailhome, v)),
        set("MOREVALIDRCPTTO_CDB").map_or_else(
            || dir.join("morevalidrcptto.cdb"),
            |v| env_path(qmailhome, v),
        ),
    )
}

/// `control/<name>` paths made in one buffer: every connection looks for
/// each of these files, and most are missing, so a path is not worth an
/// allocation of its own.
struct ControlDir(PathBuf);

impl ControlDir {
    fn new(qmailhome: &Path) -> ControlDir {
        let mut p = PathBuf::with_capacity(qmailhome.as_os_str().len() + 32);
        p.push(qmailhome);
        p.push("control");
        ControlDir(p)
    }

    fn with<T>(&mut self, name: &str, f: impl FnOnce(&Path) -> T) -> T {
        use std::os::unix::ffi::OsStringExt;
        let base = self.0.as_os_str().len();
        self.0.push(name);
        let r = f(&self.0);
        // Cheaper than pop(), which parses the components.
        let mut bytes = std::mem::take(&mut self.0).into_os_string().into_vec();
        bytes.truncate(base);
        self.0 = PathBuf::from(std::ffi::OsString::from_vec(bytes));
        r
    }
}

/// Read the settings. jms1's cdb must open once named (else `421`, as in
/// jms1); sagredo's files are off when missing.
pub fn load(
    env: &Env,
    qmailhome: &Path,
    warnings: &mut Vec<String>,
) -> Result<(RcptChecks, RcptCdbs), ControlError> {
    let set = |name| env.get(name).filter(|v| !v.is_empty());
    let jms1_path = set("VALIDRCPTTO_CDB").map(|v| env_path(qmailhome, v));
    let mut dir = ControlDir::new(qmailhome);
    let mut checks = RcptChecks::default();
    let mut cdbs = RcptCdbs::default();
    if let Some(p) = jms1_path {
        match cdb::CDB::open(&p) {
            Ok(db) => cdbs.jms1 = Some(db),
            Err(e) => return Err(ControlError::io(&p, &e)),
        }
        checks.jms1_cdb = true;
    }
    let mut number = |name: &str| {
        let v = env.get(name)?;
        let n = scan_ulong(v);
        if n.is_none() {
            warnings.push(format!("{name} is not a number: ignored"));
        }
        n
    };
    checks.jms1_limit = number("VALIDRCPTTO_LIMIT").map_or(DEFAULT_VALIDRCPTTO_LIMIT, |n| {
        u32::try_from(n).unwrap_or(u32::MAX)
    });
    checks.log = number("VALIDRCPTTO_LOG").map_or(0, |n| n.min(2) as u8);
    let brtlimit = number("BRTLIMIT");
    let maxrcpt = number("MAXRCPT");
    let relayrej = env.get("RELAYREJ").map(|v| scan_ulong(v).unwrap_or(0) > 0);
    let list = match set("VALIDRCPTTO") {
        Some(v) => read_lines(&env_path(qmailhome, v))?,
        None => dir.with("validrcptto", read_lines)?,
    };
    checks.sagredo_list = list.map(NameSet::new);
    cdbs.more = match set("MOREVALIDRCPTTO_CDB") {
        Some(v) => open_cdb(&env_path(qmailhome, v))?,
        None => dir.with("morevalidrcptto.cdb", open_cdb)?,
    };
    checks.sagredo_cdb = cdbs.more.is_some();

    let brtlimit = match brtlimit {
        Some(n) => Some(n),
        None => dir.with("brtlimit", |p| read_int(p, warnings))?,
    };
    checks.brtlimit = brtlimit.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let maxrcpt = match maxrcpt {
        Some(n) => Some(n),
        None if env.get("DISABLE_MAXRCPT").is_some() => None,
        None => dir.with("maxrcpt", |p| read_int(p, warnings))?,
    };
    checks.maxrcpt = maxrcpt
        .filter(|&n| n > 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    checks.relayrej = match relayrej {
        Some(on) => on,
        None => dir
            .with("rejectrelaytest", |p| read_int(p, warnings))?
            .is_some_and(|n| n > 0),
    };
    if env.get("NOBADHELO").is_none() {
        for (name, slot) in [
            ("badhelo", &mut checks.badhelo),
            ("badhelonorelay", &mut checks.badhelo_norelay),
        ] {
            dir.with(name, |path| -> Result<(), ControlError> {
                if let Some(lines) = read_lines(path)? {
                    let (list, errors) = RegexList::compile(&lines);
                    for e in errors {
                        warnings.push(format!("{}: {e}: line ignored", path.display()));
                    }
                    *slot = Some(list);
                }
                Ok(())
            })?;
        }
    }
    checks.logregex = env.get("LOGREGEX").is_some();
    // Relative to the qmail home, where qmail-smtpd runs in the patches.
    checks.rcptcheck = env.get("RCPTCHECK").filter(|v| !v.is_empty()).map(|v| {
        use std::os::unix::ffi::OsStrExt;
        env_path(qmailhome, v).as_os_str().as_bytes().to_vec()
    });
    checks.rcptcheck_relay =
        scan_ulong(env.get("RCPTCHECKRELAYCLIENT").unwrap_or_default()).is_some_and(|n| n > 0);
    checks.rcptcheck_timeout = match env.get("RCPTCHECK_TIMEOUT") {
        Some(v) => scan_ulong(v).unwrap_or_else(|| {
            warnings.push("RCPTCHECK_TIMEOUT is not a number: ignored".into());
            crate::core::rcptcheck::DEFAULT_TIMEOUT
        }),
        None => crate::core::rcptcheck::DEFAULT_TIMEOUT,
    }
    .max(1);
    let mut list = |name: &str| -> Result<AddrList, ControlError> {
        dir.with(name, |path| {
            let Some(lines) = read_lines(path)? else {
                return Ok(AddrList::default());
            };
            let (list, errors) = AddrList::new(lines);
            for e in errors {
                warnings.push(format!("{}: {e}", path.display()));
            }
            Ok(list)
        })
    };
    checks.badrcptto = list("badrcptto")?;
    checks.badrcptto_norelay = list("badrcpttonorelay")?;
    checks.badmailfrom_norelay = list("badmailfromnorelay")?;
    Ok((checks, cdbs))
}
