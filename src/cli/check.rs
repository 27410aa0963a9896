//! `qmail-smtpd --check`: a lint of the installation. It reads what a
//! connection would read and judges file permissions as the account the
//! service runs as (`--user`, default `qmaild`, as tcpserver's `-u` would
//! set), since an administrator runs it as root. Exit status 1 when any
//! finding is an error.

use std::ffi::{CString, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::io::checkpassword::Invocation;
use crate::io::control::{self, Env};
use crate::io::tls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub text: String,
}

/// The account whose view of the files is judged.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub groups: Vec<u32>,
}

impl Account {
    /// Why `path`, a control file that exists, is a problem for this
    /// account (it cannot read it: every connection gets 421), if it is.
    pub fn control_unreadable(&self, path: &Path) -> Option<String> {
        (path.exists() && !self.may(path, 4)).then(|| {
            format!(
                "{} is not readable by {}: connections get 421",
                path.display(),
                self.name
            )
        })
    }

    /// Look the user up in the password database.
    pub fn lookup(name: &str) -> Option<Account> {
        let user = nix::unistd::User::from_name(name).ok()??;
        let cname = CString::new(name).ok()?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| vec![user.gid.as_raw()]);
        Some(Account {
            name: name.into(),
            uid: user.uid.as_raw(),
            groups,
        })
    }

    /// May this account access `path` for `bits` (4 read, 2 write, 1
    /// execute), including search permission on every directory above it?
    pub fn may(&self, path: &Path, bits: u32) -> bool {
        let allowed = |meta: &std::fs::Metadata, bits: u32| {
            if self.uid == 0 {
                // root may read anything, and execute what has any x bit.
                return bits != 1 || meta.mode() & 0o111 != 0;
            }
            let mode = meta.mode();
            let shift = if meta.uid() == self.uid {
                6
            } else if self.groups.contains(&meta.gid()) {
                3
            } else {
                0
            };
            (mode >> shift) & bits == bits
        };
        let Ok(abs) = std::path::absolute(path) else {
            return false;
        };
        for dir in abs.ancestors().skip(1) {
            match std::fs::metadata(dir) {
                Ok(m) if allowed(&m, 1) => {}
                _ => return false,
            }
        }
        std::fs::metadata(&abs).is_ok_and(|m| allowed(&m, bits))
    }
}

/// The options of `--check`.
#[derive(Debug)]
pub struct Options {
    pub user: String,
    /// `--rules`: the tcprules CDB the service's tcpserver reads (`-x`).
    pub rules: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            user: "qmaild".into(),
            rules: None,
        }
    }
}

pub fn parse_args(args: &[OsString]) -> Result<(Options, Vec<OsString>), String> {
    let mut opts = Options::default();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_string_lossy().as_ref() {
            "--user" => {
                opts.user = it
                    .next()
                    .ok_or("--user needs a value")?
                    .to_string_lossy()
                    .into_owned();
            }
            "--rules" => {
                opts.rules = Some(it.next().ok_or("--rules needs a value")?.into());
            }
            "--" => {
                rest.extend(it.cloned());
                break;
            }
            o if o.starts_with("--") => return Err(format!("unknown option {o}")),
            _ => rest.push(a.clone()),
        }
    }
    Ok((opts, rest))
}

/// Run every check; `now` is the Unix time.
pub fn check(env: &Env, invocation: &Invocation, opts: &Options, now: i64) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut say = |level, text: String| f.push(Finding { level, text });
    let account = Account::lookup(&opts.user);
    if account.is_none() {
        say(
            Level::Warning,
            format!(
                "user {} does not exist: file permissions not judged (give --user)",
                opts.user
            ),
        );
    }

    // Control files and the environment, as a connection reads them.
    let settings = match control::load(env, invocation) {
        Ok(s) => {
            say(Level::Ok, "control files and environment read".into());
            Some(s)
        }
        Err(e) => {
            say(
                Level::Error,
                format!("a connection would get {}: {e}", e.reply().code),
            );
            None
        }
    };
    let control = control::qmailhome(env).join("control");
    if let Some(s) = &settings {
        for w in &s.warnings {
            let level = if w.contains("rcpthosts is missing") || w.contains("does not compile") {
                Level::Error
            } else {
                Level::Warning
            };
            say(level, w.clone());
        }
        if s.config.rcpthosts.is_some() {
            say(Level::Ok, "control/rcpthosts exists".into());
        }
        if let Some(acc) = &account {
            for name in [
                "me",
                "smtpgreeting",
                "localiphost",
                "rcpthosts",
                "morercpthosts.cdb",
                "badmailfrom",
                "databytes",
                "timeoutsmtpd",
                "tlsserverciphers",
            ] {
                if let Some(text) = acc.control_unreadable(&control.join(name)) {
                    say(Level::Error, text);
                }
            }
            if !acc.may(&s.queue_program, 1) {
                say(
                    Level::Error,
                    format!(
                        "{} is not executable by {}: DATA gets 451",
                        s.queue_program.display(),
                        acc.name
                    ),
                );
            }
        }
    }

    // Relaying for everybody.
    if env.get("RELAYCLIENT").is_some() {
        say(
            Level::Error,
            "RELAYCLIENT is set for every client of this service: an open relay (set it per address in the tcprules file)".into(),
        );
    }
    check_proxy(env, opts, account.as_ref(), &mut say);
    let insecure = crate::core::policy::number(env.get("ALLOW_INSECURE_AUTH")) > 0
        || env.get("FORCETLS") == Some(b"0");
    if insecure && invocation.backend.is_some() {
        say(
            Level::Warning,
            "ALLOW_INSECURE_AUTH/FORCETLS=0: passwords may cross the network in clear".into(),
        );
    }

    // The certificate.
    let (cert, key) = control::tls_paths(env, &control);
    let smtps = env.get("SMTPS").is_some();
    check_certificate(
        &cert,
        key.as_deref(),
        account.as_ref(),
        now,
        smtps,
        None,
        &mut say,
    );
    check_sni_certificates(&control, account.as_ref(), now, &mut say);
    check_client_relay(&control, account.as_ref(), now, &mut say);
    let client = control.join("clientcert.pem");
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(&client), std::fs::canonicalize(&cert)) {
        if a == b {
            say(
                Level::Warning,
                format!(
                    "{} is the same file as {}: one file has one owner and group, so it cannot be readable by both qmail-smtpd's and qmail-remote's users without being world-readable: use two files",
                    client.display(),
                    cert.display()
                ),
            );
        }
    }

    // The AUTH back-end.
    if let Some(b) = &invocation.backend {
        // checkpassword runs as the service account; the subprogram as
        // whichever user checkpassword switches to, so it must be
        // executable by everyone.
        let world = Account::world();
        let programs = std::iter::once((b.program.clone(), account.clone())).chain(
            b.subprogram
                .first()
                .map(|s| (PathBuf::from(s), Some(world.clone()))),
        );
        for (p, account) in programs {
            let resolved = crate::io::checkpassword::find_program(p.as_os_str());
            match (&resolved, &account) {
                (None, _) => say(
                    Level::Error,
                    format!("{} not found: AUTH would always fail (454)", p.display()),
                ),
                (Some(r), Some(acc)) if !acc.may(r, 1) => say(
                    Level::Error,
                    format!(
                        "{} is not executable by {}: AUTH would always fail (454)",
                        r.display(),
                        acc.name
                    ),
                ),
                (Some(r), _) => say(Level::Ok, format!("{} is executable", r.display())),
            }
        }
    }
    check_plugins(env, account.as_ref(), &mut say);
    f.extend(crate::cli::check_rcpt::findings(
        env,
        settings.as_ref(),
        account.as_ref(),
    ));
    f
}

/// The PROXY protocol: only the balancer's addresses may send a header,
/// and the rules it reads for the real client must be readable.
fn check_proxy(
    env: &Env,
    opts: &Options,
    account: Option<&Account>,
    say: &mut impl FnMut(Level, String),
) {
    let forgeable = "any client that can reach this port can claim any address (and the relaying and AUTH rules that go with it): set it only in the tcprules entry of the balancer's address, e.g. 10.0.0.5:allow,PROXY_PROTOCOL=\"1\"";
    if crate::core::policy::number(env.get("PROXY_PROTOCOL")) > 0 {
        say(
            Level::Warning,
            format!("PROXY_PROTOCOL is set for every client of this service: {forgeable}"),
        );
    }
    let mut proxy_rules: Vec<PathBuf> = Vec::new();
    if let Some(p) = env.get("PROXY_RULES").filter(|p| !p.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        proxy_rules.push(PathBuf::from(std::ffi::OsStr::from_bytes(p)));
    }
    if let Some(path) = &opts.rules {
        let db = match cdb::CDB::open(path) {
            Ok(db) => db,
            Err(e) => {
                say(Level::Error, format!("--rules {}: {e}", path.display()));
                return;
            }
        };
        for (k, v) in db.iter().filter_map(Result::ok) {
            let rule = crate::core::tcprules::parse(String::from_utf8_lossy(&k).into_owned(), &v);
            let get = |name: &str| rule.env.iter().rev().find(|(k, _)| k == name);
            if !rule.allow
                || crate::core::policy::number(get("PROXY_PROTOCOL").map(|(_, v)| v.as_bytes()))
                    == 0
            {
                continue;
            }
            let who = if rule.key.is_empty() {
                "the default rule".to_string()
            } else {
                format!("the rule {:?}", rule.key)
            };
            if rule.key.is_empty() || rule.key == "=" {
                say(
                    Level::Warning,
                    format!(
                        "{who} of {} sets PROXY_PROTOCOL: {forgeable}",
                        path.display()
                    ),
                );
            }
            match get("PROXY_RULES").filter(|(_, v)| !v.is_empty()) {
                Some((_, p)) => proxy_rules.push(PathBuf::from(p)),
                None if get("RELAYCLIENT").is_some() => say(
                    Level::Error,
                    format!(
                        "{who} sets PROXY_PROTOCOL and RELAYCLIENT without PROXY_RULES: every client through that balancer may relay (add PROXY_RULES=\"{}\", whose look-up undoes the balancer's own rule)",
                        path.display()
                    ),
                ),
                None => say(
                    Level::Ok,
                    format!(
                        "{who} reads a PROXY header; the balancer's rule applies to every client through it (no PROXY_RULES)"
                    ),
                ),
            }
        }
    }
    proxy_rules.sort();
    proxy_rules.dedup();
    for p in proxy_rules {
        match cdb::CDB::open(&p) {
            Err(e) => say(
                Level::Error,
                format!(
                    "PROXY_RULES {}: {e}: connections through the balancer get 421",
                    p.display()
                ),
            ),
            Ok(_) => match account {
                Some(acc) if !acc.may(&p, 4) => say(
                    Level::Error,
                    format!(
                        "PROXY_RULES {} is not readable by {}: connections through the balancer get 421",
                        p.display(),
                        acc.name
                    ),
                ),
                _ => say(
                    Level::Ok,
                    format!("PROXY_RULES {} is readable", p.display()),
                ),
            },
        }
    }
}

/// qmail-spp: the plugin file readable, every plugin executable by the
/// service account; the policy service reachable.
fn check_plugins(env: &Env, account: Option<&Account>, say: &mut impl FnMut(Level, String)) {
    let home = control::qmailhome(env);
    let file = crate::io::plugins::file(env, &home);
    if let Some(acc) = account {
        if file.exists() && env.get("NOSPP").is_none() && !acc.may(&file, 4) {
            say(
                Level::Error,
                format!(
                    "{} is not readable by {}: connections get 421",
                    file.display(),
                    acc.name
                ),
            );
        }
    }
    if let Ok(Some(hooks)) = crate::io::plugins::load(env, &home) {
        for hook in crate::core::spp::Hook::ALL {
            for p in hooks.plugins.get(hook) {
                let (program, _) = p.argv();
                let path = home.join(std::ffi::OsStr::from_bytes(program));
                let line = String::from_utf8_lossy(&p.line);
                let ok = match account {
                    Some(acc) => acc.may(&path, 1),
                    None => path.exists(),
                };
                if ok {
                    say(
                        Level::Ok,
                        format!("[{}] plugin {line} is executable", hook.name()),
                    );
                } else {
                    say(
                        Level::Error,
                        format!(
                            "[{}] plugin {line}: {} is not executable{}: that command gets 451",
                            hook.name(),
                            path.display(),
                            account.map_or(String::new(), |a| format!(" by {}", a.name))
                        ),
                    );
                }
            }
        }
    }
    if let Some(spec) = env.get("POLICY_SERVICE").filter(|v| !v.is_empty()) {
        use crate::io::policy_client::{Target, parse_target};
        let reach = match parse_target(spec) {
            Err(e) => Err(e),
            Ok(Target::Inet(hp)) => std::net::ToSocketAddrs::to_socket_addrs(&hp)
                .map_err(|e| e.to_string())
                .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
                .and_then(|a| {
                    std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3))
                        .map_err(|e| e.to_string())
                })
                .map(drop),
            Ok(Target::Unix(p)) => std::os::unix::net::UnixStream::connect(&p)
                .map_err(|e| e.to_string())
                .map(drop),
        };
        let spec = String::from_utf8_lossy(spec);
        match reach {
            Ok(()) => say(
                Level::Ok,
                format!("policy service {spec} accepts connections"),
            ),
            Err(e) => say(
                Level::Error,
                format!(
                    "policy service {spec}: {e}: recipients would get POLICY_SERVICE_DEFAULT_ACTION (by default 451 4.3.5)"
                ),
            ),
        }
    }
}

impl Account {
    /// Nobody in particular: only the "other" permission bits count.
    fn world() -> Account {
        Account {
            name: "others".into(),
            uid: u32::MAX - 1,
            groups: vec![],
        }
    }
}

/// Relaying for client certificates: `clientca.pem` and `tlsclients`
/// both there or neither, both loading, readable by the service account;
/// `clientcrl.pem` parsing and not past its nextUpdate.
fn check_client_relay(
    control: &Path,
    account: Option<&Account>,
    now: i64,
    say: &mut impl FnMut(Level, String),
) {
    let [clients, ca, crl] = control::client_relay_paths(control);
    match (clients.exists(), ca.exists()) {
        (false, false) => return,
        (true, false) | (false, true) => {
            let (there, missing) = if ca.exists() {
                (&ca, &clients)
            } else {
                (&clients, &ca)
            };
            say(
                Level::Warning,
                format!(
                    "{} exists but {} does not: no client certificate is asked for",
                    there.display(),
                    missing.display()
                ),
            );
            return;
        }
        (true, true) => {}
    }
    let mut readable = true;
    for path in [&clients, &ca, &crl] {
        if let (true, Some(acc)) = (path.exists(), account) {
            if !acc.may(path, 4) {
                readable = false;
                say(
                    Level::Error,
                    format!(
                        "{} is not readable by {}: no client certificate is asked for",
                        path.display(),
                        acc.name
                    ),
                );
            }
        }
    }
    match control::load_client_relay(control) {
        Ok(Some(r)) if readable => say(
            Level::Ok,
            format!(
                "client certificates asked for: CAs from {}, {} address(es) in {}",
                ca.display(),
                r.tlsclients.len(),
                clients.display()
            ),
        ),
        Ok(_) => {}
        Err(e) => say(
            Level::Error,
            format!("{e}: no client certificate is asked for"),
        ),
    }
    if !crl.exists() {
        return;
    }
    match tls::crl_next_updates(&crl) {
        Ok(list) if list.is_empty() => {}
        Ok(list) => {
            for (n, next) in list.iter().enumerate() {
                let what = format!("{}: CRL {}", crl.display(), n + 1);
                match next {
                    None => say(Level::Warning, format!("{what} has no next update")),
                    Some(t) if *t <= now => say(
                        Level::Error,
                        format!(
                            "{what} is past its next update ({} day(s) ago): fetch a new one",
                            (now - t).div_euclid(86_400)
                        ),
                    ),
                    Some(t) => say(
                        Level::Ok,
                        format!(
                            "{what} is current for {} more day(s)",
                            (t - now).div_euclid(86_400)
                        ),
                    ),
                }
            }
        }
        Err(e) => say(Level::Error, e.to_string()),
    }
}

/// Every `control/servercerts/<name>/servercert.pem`: its name must be a
/// lower-case host name (else it is never used), and its file is checked
/// as the default certificate is.
fn check_sni_certificates(
    control: &Path,
    account: Option<&Account>,
    now: i64,
    say: &mut impl FnMut(Level, String),
) {
    let dir = control.join("servercerts");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            say(
                Level::Error,
                format!("{}: {e}: SNI certificates are not used", dir.display()),
            );
            return;
        }
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
        let path = dir.join(&name).join("servercert.pem");
        match crate::core::sni::dir_name(bytes) {
            Some(lower) if lower.as_bytes() == bytes => {
                say(Level::Ok, format!("SNI name {lower}: {}", path.display()));
                if path.exists() {
                    let impact = format!("clients asking for {lower} get the default certificate");
                    check_certificate(&path, None, account, now, false, Some(&impact), say);
                } else {
                    say(
                        Level::Warning,
                        format!(
                            "{} does not exist: clients asking for {lower} get the default certificate",
                            path.display()
                        ),
                    );
                }
            }
            _ => say(
                Level::Warning,
                format!(
                    "{}: not a lower-case host name, so never used for SNI",
                    dir.join(&name).display()
                ),
            ),
        }
    }
}

fn check_certificate(
    cert: &Path,
    key: Option<&Path>,
    account: Option<&Account>,
    now: i64,
    smtps: bool,
    impact: Option<&str>,
    say: &mut impl FnMut(Level, String),
) {
    if !cert.exists() {
        if smtps {
            say(
                Level::Error,
                format!(
                    "{} does not exist: with SMTPS every connection is closed before the greeting",
                    cert.display()
                ),
            );
        } else {
            say(
                Level::Warning,
                format!("{} does not exist: STARTTLS is not offered", cert.display()),
            );
        }
        return;
    }
    let pairs = match tls::key_pairs(cert, key) {
        Ok(p) => p,
        Err(e) => {
            say(
                Level::Error,
                format!(
                    "{e}: {}",
                    impact.unwrap_or(if smtps {
                        "with SMTPS every connection is closed before the greeting"
                    } else {
                        "STARTTLS would not be offered"
                    })
                ),
            );
            Vec::new()
        }
    };
    if pairs.len() == 1 {
        say(
            Level::Ok,
            format!("{}: certificate and key load, and match", cert.display()),
        );
    }
    for p in &pairs {
        let what = if pairs.len() == 1 {
            format!("{}: the certificate", cert.display())
        } else {
            say(
                Level::Ok,
                format!(
                    "{}: {} key and certificate load, and match (chain of {})",
                    cert.display(),
                    p.algorithm,
                    p.chain_len
                ),
            );
            format!("{}: the {} certificate", cert.display(), p.algorithm)
        };
        match validity(&p.leaf) {
            Some((_, not_after)) => {
                let days = (not_after - now).div_euclid(86_400);
                if not_after <= now {
                    say(Level::Error, format!("{what} has expired"));
                } else if days < 30 {
                    say(Level::Warning, format!("{what} expires in {days} day(s)"));
                } else {
                    say(Level::Ok, format!("{what} is valid for {days} more days"));
                }
            }
            None => say(
                Level::Warning,
                format!("{what}: cannot read the certificate's validity"),
            ),
        }
    }
    // The file that holds the private key must not be world-readable.
    let key_file = key.unwrap_or(cert);
    for path in std::iter::once(cert).chain(key) {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if path == key_file && meta.mode() & 0o004 != 0 {
            say(
                Level::Error,
                format!(
                    "{} is readable by every user: it holds the private key (chmod o-r; give it the service account's group)",
                    path.display()
                ),
            );
        }
        if let Some(acc) = account {
            if !acc.may(path, 4) {
                say(
                    Level::Error,
                    format!(
                        "{} is not readable by {}: {}",
                        path.display(),
                        acc.name,
                        impact.unwrap_or("STARTTLS would not be offered")
                    ),
                );
            }
        }
    }
}

pub use crate::core::x509::validity;
