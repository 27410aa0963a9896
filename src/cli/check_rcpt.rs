//! `--check` for the files and variables of issue 12's checks: the
//! recipient lists and cdbs readable by the service account, badhelo
//! patterns that compile, the address lists (qregex: addresses, `@domain`
//! or regular expressions, `!` negating), and RCPTCHECK executable.

use crate::cli::check::{Account, Finding, Level};
use crate::io::control::{Env, Settings, qmailhome};

/// The findings; `settings` is `None` when the files could not be read at
/// all (already reported).
pub fn findings(env: &Env, settings: Option<&Settings>, account: Option<&Account>) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut say = |level, text: String| f.push(Finding { level, text });
    let home = qmailhome(env);
    let control = home.join("control");
    let (jms1, list, more) = crate::io::rcpt_control::paths(env, &home);
    let mut files: Vec<std::path::PathBuf> = [
        "badhelo",
        "badhelonorelay",
        "badrcptto",
        "badrcpttonorelay",
        "badmailfromnorelay",
        "maxrcpt",
        "brtlimit",
        "rejectrelaytest",
    ]
    .iter()
    .map(|n| control.join(n))
    .collect();
    files.extend([list, more]);
    files.extend(jms1.clone());
    if let Some(acc) = account {
        for p in &files {
            if let Some(text) = acc.control_unreadable(p) {
                say(Level::Error, text);
            }
        }
    }
    if let Some(p) = &jms1 {
        if settings.is_some() {
            say(Level::Ok, format!("VALIDRCPTTO_CDB {} opens", p.display()));
        }
    }
    if let Some(s) = settings {
        let rc = &s.config.rcpt_checks;
        for (name, list) in [
            ("badhelo", &rc.badhelo),
            ("badhelonorelay", &rc.badhelo_norelay),
        ] {
            if let Some(l) = list {
                say(
                    Level::Ok,
                    format!("control/{name}: {} patterns compile", l.len()),
                );
            }
        }
        for (name, list) in [
            ("badmailfrom", &s.config.badmailfrom),
            ("badmailfromnorelay", &rc.badmailfrom_norelay),
            ("badrcptto", &rc.badrcptto),
            ("badrcpttonorelay", &rc.badrcptto_norelay),
        ] {
            if !list.is_empty() {
                say(
                    Level::Ok,
                    format!(
                        "control/{name}: lines: {}, regular expressions compiled: {}",
                        list.len(),
                        list.regex_count()
                    ),
                );
            }
        }
        if let Some(program) = &rc.rcptcheck {
            use std::os::unix::ffi::OsStrExt;
            let p = std::path::Path::new(std::ffi::OsStr::from_bytes(program));
            match (p.exists(), account) {
                (false, _) => say(
                    Level::Error,
                    format!(
                        "RCPTCHECK {} does not exist: every recipient would get 451",
                        p.display()
                    ),
                ),
                (true, Some(acc)) if !acc.may(p, 1) => say(
                    Level::Error,
                    format!(
                        "RCPTCHECK {} is not executable by {}: every recipient would get 451",
                        p.display(),
                        acc.name
                    ),
                ),
                (true, _) => say(
                    Level::Ok,
                    format!("RCPTCHECK {} is executable", p.display()),
                ),
            }
        }
    }
    f
}
