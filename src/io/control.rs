//! Edge: qmail's control files and the environment tcpserver sets, read
//! once at connect time into a [`Settings`].
//!
//! Semantics are qmail's `control.c`: a "line" file uses its first line, a
//! "lines" file every line that is neither empty nor a `#` comment, trailing
//! white space is stripped, a missing file means the default, and a file
//! that exists but cannot be read is fatal (`421 unable to read controls`).

use std::ffi::OsString;
use std::fmt;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::core::policy::{Contradiction, Policy, scan_ulong as parse_u64};
use crate::io::checkpassword::{Backend, Invocation};
use crate::io::log;
use crate::io::tls;
use crate::smtp::reply::{self, Reply};
use crate::smtp::session::{Config, LookupError, Lookups, NameSet};

/// Default `timeoutsmtpd`, seconds.
pub const DEFAULT_TIMEOUT: u64 = 1200;

/// A control file exists but could not be read, or no name could be found.
#[derive(Debug)]
pub struct ControlError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl ControlError {
    pub(crate) fn io(path: &Path, e: &io::Error) -> ControlError {
        ControlError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// Why the connection cannot be served at all.
#[derive(Debug)]
pub enum StartupError {
    Control(ControlError),
    Policy(Contradiction),
}

impl StartupError {
    /// What the client is told before we exit.
    pub fn reply(&self) -> Reply {
        match self {
            StartupError::Control(_) => reply::CONTROL_UNREADABLE,
            StartupError::Policy(c) => c.reply,
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartupError::Control(e) => write!(f, "unable to read controls: {e}"),
            StartupError::Policy(c) => write!(f, "contradictory settings: {}", c.why),
        }
    }
}

impl From<ControlError> for StartupError {
    fn from(e: ControlError) -> StartupError {
        StartupError::Control(e)
    }
}

/// The environment variables we read, captured once.
#[derive(Debug, Default, Clone)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
        }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Every variable whose name starts with `prefix`: (rest of the name,
    /// value), later settings winning.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (String, &'a [u8])> + 'a {
        use std::os::unix::ffi::OsStrExt;
        self.vars.iter().filter_map(move |(k, v)| {
            let rest = k.as_bytes().strip_prefix(prefix.as_bytes())?;
            let name = std::str::from_utf8(rest).ok().filter(|n| !n.is_empty())?;
            Some((name.to_string(), v.as_bytes()))
        })
    }

    /// Set a variable (later settings win), as tcpserver does for a rule.
    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.push((name.into(), value.into()));
    }

    /// Apply set/unset changes (the PROXY header's, say).
    pub fn apply(&mut self, changes: &[(String, Option<String>)]) {
        use std::os::unix::ffi::OsStrExt;
        for (name, value) in changes {
            match value {
                Some(v) => self.set(name, v),
                None => self.vars.retain(|(k, _)| k.as_bytes() != name.as_bytes()),
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        use std::os::unix::ffi::OsStrExt;
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.as_bytes())
    }
}

/// Everything read at connect time.
pub struct Settings {
    pub config: Config,
    pub timeout: Duration,
    pub qmailhome: PathBuf,
    /// The program that queues a message (`QMAILQUEUE` or `bin/qmail-queue`).
    pub queue_program: PathBuf,
    pub lookups: ControlLookups,
    /// checkpassword and its subprogram, when AUTH is configured.
    pub backend: Option<Backend>,
    /// How long checkpassword may take (`CHECKPASSWORD_TIMEOUT`, seconds).
    pub auth_timeout: Duration,
    /// Non-fatal problems worth a line on stderr.
    pub warnings: Vec<String>,
}

/// Default `CHECKPASSWORD_TIMEOUT`, seconds.
pub const DEFAULT_AUTH_TIMEOUT: u64 = 60;

/// `timeoutsmtpd` alone, for what is read before the settings (the PROXY
/// header). A file that cannot be read gives the default here; [`load`]
/// then refuses the connection for it.
pub fn timeout(env: &Env) -> Duration {
    let path = qmailhome(env).join("control").join("timeoutsmtpd");
    let secs = read_int(&path, &mut Vec::new()).ok().flatten();
    Duration::from_secs(secs.unwrap_or(DEFAULT_TIMEOUT).max(1))
}

/// Read the control files below `$QMAILHOME/control`, the tcpserver
/// environment and what the command line said.
pub fn load(env: &Env, invocation: &Invocation) -> Result<Settings, StartupError> {
    use std::os::unix::ffi::OsStrExt;
    let qmailhome = qmailhome(env);
    let dir = qmailhome.join("control");
    let _index = ControlIndex::new(&dir);
    let mut warnings = Vec::new();

    let me = read_line(&dir.join("me"))?;
    let greeting = match env.get("SMTPGREETING") {
        Some(g) => g.to_vec(),
        None => match read_line(&dir.join("smtpgreeting"))? {
            Some(g) => g,
            None => me.clone().ok_or_else(|| ControlError {
                path: dir.join("me"),
                reason: "missing, and so is smtpgreeting: no name to greet with".into(),
            })?,
        },
    };
    let localiphost = read_line(&dir.join("localiphost"))?.or_else(|| me.clone());

    let timeout = read_int(&dir.join("timeoutsmtpd"), &mut warnings)?
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(1);

    let rcpthosts_path = dir.join("rcpthosts");
    let rcpthosts = read_lines(&rcpthosts_path)?.map(NameSet::new);
    if rcpthosts.is_none() {
        warnings.push(format!(
            "{} is missing: refusing every recipient (classic qmail would be an open relay)",
            rcpthosts_path.display()
        ));
    }
    let more = if rcpthosts.is_some() {
        open_cdb(&dir.join("morercpthosts.cdb"))?
    } else {
        None
    };
    let badmailfrom_path = dir.join("badmailfrom");
    let badmailfrom = match read_lines(&badmailfrom_path)? {
        None => crate::core::rcpt_checks::AddrList::default(),
        Some(lines) => {
            let (list, errors) = crate::core::rcpt_checks::AddrList::new(lines);
            for e in errors {
                warnings.push(format!("{}: {e}", badmailfrom_path.display()));
            }
            list
        }
    };

    let mut databytes = read_int(&dir.join("databytes"), &mut warnings)?.unwrap_or(0);
    if let Some(v) = env.get("DATABYTES") {
        // qmail-smtpd: `scan_ulong`, so a value without digits means 0.
        databytes = parse_u64(v).unwrap_or_else(|| {
            warnings.push("DATABYTES has no leading digits: no size limit".into());
            0
        });
    }

    let nonempty = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(<[u8]>::to_vec);
    let mut config = Config::new(&greeting);
    config.localiphost = localiphost;
    config.rcpthosts = rcpthosts;
    config.badmailfrom = badmailfrom;
    config.databytes = databytes;
    config.relayclient = env.get("RELAYCLIENT").map(<[u8]>::to_vec);
    config.remote_ip = nonempty("TCPREMOTEIP").unwrap_or_else(|| b"unknown".to_vec());
    config.remote_host = nonempty("TCPREMOTEHOST").unwrap_or_else(|| b"unknown".to_vec());
    config.remote_info = nonempty("TCPREMOTEINFO");
    config.local_host = nonempty("TCPLOCALHOST")
        .or_else(|| nonempty("TCPLOCALIP"))
        .unwrap_or_else(|| b"unknown".to_vec());

    let backend = invocation.backend.clone();
    let policy =
        Policy::from_env(|name| env.get(name), backend.is_some()).map_err(StartupError::Policy)?;
    config.tls = policy.tls;
    config.auth = policy.auth;
    let mut number = |name: &str| {
        let v = env.get(name)?;
        let n = parse_u64(v);
        if n.is_none() {
            warnings.push(format!("{name} is not a number: ignored"));
        }
        n
    };
    if let Some(n) = number("AUTH_MAX_FAILURES") {
        config.max_auth_failures = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    }
    if let Some(n) = number("AUTH_FAILURE_DELAY") {
        config.auth_failure_delay_ms = n;
    }
    if let Some(n) = number("SMTPD_MIN_DATA_RATE") {
        config.min_data_rate = n;
    }
    let auth_timeout = number("CHECKPASSWORD_TIMEOUT")
        .unwrap_or(DEFAULT_AUTH_TIMEOUT)
        .max(1);
    config.transcript = crate::core::policy::number(env.get("SMTPD_TRANSCRIPT")) > 0;
    config.auth_env = env
        .with_prefix("AUTH_SET_")
        .map(|(k, v)| (k, Some(v.to_vec())))
        .chain(env.with_prefix("AUTH_UNSET_").map(|(k, _)| (k, None)))
        .collect();
    let cram_host = invocation
        .hostname
        .clone()
        .or_else(|| me.clone())
        .unwrap_or_else(|| {
            greeting
                .split(|&b| b == b' ')
                .next()
                .unwrap_or_default()
                .to_vec()
        });

    let (cert, key) = tls_paths(env, &dir);
    let tls_source = TlsSource {
        control: dir.clone(),
        cert,
        key,
        ciphers: match env.get("TLSCIPHERS").filter(|v| !v.is_empty()) {
            Some(c) => Some(c.to_vec()),
            // As the qmail TLS patch: every line, joined with `:`.
            None => read_lines(&dir.join("tlsserverciphers"))?.map(|l| l.join(&b':')),
        }
        .map(|c| String::from_utf8_lossy(&c).into_owned()),
    };

    let (rcpt_checks, rcpt_cdbs) = crate::io::rcpt_control::load(env, &qmailhome, &mut warnings)?;
    if let Some(n) = rcpt_checks.maxrcpt {
        config.max_rcpts = n;
    }
    config.rcpt_checks = rcpt_checks;

    let queue_program = match env.get("QMAILQUEUE").filter(|v| !v.is_empty()) {
        Some(q) => PathBuf::from(std::ffi::OsStr::from_bytes(q)),
        None => qmailhome.join("bin/qmail-queue"),
    };

    Ok(Settings {
        config,
        timeout: Duration::from_secs(timeout),
        qmailhome,
        queue_program,
        lookups: ControlLookups {
            more_rcpthosts: more,
            local_ips: OnceLock::new(),
            tls_source,
            tls_config: OnceLock::new(),
            tls_files: OnceLock::new(),
            client_relay: OnceLock::new(),
            cram_host,
            challenges: std::cell::Cell::new(0),
            rcpt_cdbs,
        },
        backend,
        auth_timeout: Duration::from_secs(auth_timeout),
        warnings,
    })
}

/// `QMAILHOME`, else `/var/qmail`.
pub fn qmailhome(env: &Env) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(
        env.get("QMAILHOME")
            .filter(|v| !v.is_empty())
            .unwrap_or(b"/var/qmail"),
    ))
}

/// The certificate file (`TLS_SERVER_CERT`, else `control/servercert.pem`
/// below `control`) and the key's own file (`TLS_SERVER_KEY`), if any.
pub fn tls_paths(env: &Env, control: &Path) -> (PathBuf, Option<PathBuf>) {
    use std::os::unix::ffi::OsStrExt;
    let path = |v: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(v));
    let set = |name| env.get(name).filter(|v| !v.is_empty());
    (
        set("TLS_SERVER_CERT").map_or_else(|| control.join("servercert.pem"), path),
        set("TLS_SERVER_KEY").map(path),
    )
}

/// A directory (bytes) and the names in it.
type Listing = (Vec<u8>, Vec<Vec<u8>>);

std::thread_local! {
    /// The names in the control directory while a [`ControlIndex`] is
    /// held: a connection looks for some twenty optional files, most of
    /// them absent, and one directory listing answers for all of those.
    /// Plain bytes, compared with memcmp: cheaper than the failed opens.
    static INDEX: std::cell::RefCell<Option<Listing>> =
        const { std::cell::RefCell::new(None) };
}

/// While held, a file of `dir` that its listing does not name is missing
/// without an `open` (the listing is taken once, when the guard is made).
/// Nested guards share the outer one's listing. Without a listing (the
/// directory cannot be read, only searched), every file is opened as
/// before.
pub struct ControlIndex(bool);

impl ControlIndex {
    pub fn new(dir: &Path) -> ControlIndex {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        if INDEX.with(|i| i.borrow().is_some()) {
            return ControlIndex(false);
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return ControlIndex(false);
        };
        let names = entries
            .filter_map(|e| e.ok().map(|e| e.file_name().into_vec()))
            .collect();
        let dir = dir.as_os_str().as_bytes().to_vec();
        INDEX.with(|i| *i.borrow_mut() = Some((dir, names)));
        ControlIndex(true)
    }
}

impl Drop for ControlIndex {
    fn drop(&mut self) {
        if self.0 {
            INDEX.with(|i| *i.borrow_mut() = None);
        }
    }
}

/// `path` is `<indexed directory>/<name>` and the listing lacks `name`.
fn known_missing(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    INDEX.with(|i| {
        let index = i.borrow();
        let Some((dir, names)) = &*index else {
            return false;
        };
        let name = path
            .as_os_str()
            .as_bytes()
            .strip_prefix(dir.as_slice())
            .and_then(|rest| rest.strip_prefix(b"/"));
        match name {
            Some(n) if !n.is_empty() && !n.contains(&b'/') => !names.iter().any(|x| x == n),
            _ => false,
        }
    })
}

/// Read a whole control file; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, ControlError> {
    if known_missing(path) {
        return Ok(None);
    }
    // Control files are small: a first read of 32 bytes (what std's
    // read_to_end probes with) usually holds one.
    match crate::io::read_small(path, 0) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ControlError::io(path, &e)),
    }
}

fn trim_end_ws(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// qmail's `control_readline`: the first line, trailing white space removed.
pub fn read_line(path: &Path) -> Result<Option<Vec<u8>>, ControlError> {
    Ok(read_file(path)?.map(|data| {
        let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
        trim_end_ws(first).to_vec()
    }))
}

/// qmail's `control_readfile`: non-empty, non-`#` lines.
pub fn read_lines(path: &Path) -> Result<Option<Vec<Vec<u8>>>, ControlError> {
    Ok(read_file(path)?.map(|data| {
        data.split(|&b| b == b'\n')
            .map(trim_end_ws)
            .filter(|l| !l.is_empty() && l[0] != b'#')
            .map(<[u8]>::to_vec)
            .collect()
    }))
}

/// qmail's `control_readint`: the leading digits of the first line; a line
/// without any is ignored (with a warning, where qmail was silent).
pub(crate) fn read_int(
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<u64>, ControlError> {
    let Some(line) = read_line(path)? else {
        return Ok(None);
    };
    match parse_u64(&line) {
        Some(n) => Ok(Some(n)),
        None => {
            warnings.push(format!("{}: not a number: ignored", path.display()));
            Ok(None)
        }
    }
}

pub(crate) fn open_cdb(path: &Path) -> Result<Option<cdb::CDB>, ControlError> {
    if known_missing(path) {
        return Ok(None);
    }
    match cdb::CDB::open(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ControlError::io(path, &e)),
    }
}

/// Where the TLS certificate, key and cipher list come from.
#[derive(Debug, Clone)]
pub struct TlsSource {
    /// The control directory (`servercerts/`, client-certificate files).
    pub control: PathBuf,
    /// `TLS_SERVER_CERT`, else `control/servercert.pem` (chain and key).
    pub cert: PathBuf,
    /// `TLS_SERVER_KEY`: the key in a file of its own.
    pub key: Option<PathBuf>,
    /// `TLSCIPHERS`, else `control/tlsserverciphers`.
    pub ciphers: Option<String>,
}

/// The [`Lookups`] the session asks of the edge.
pub struct ControlLookups {
    more_rcpthosts: Option<cdb::CDB>,
    /// This host's IPv4 addresses, read on first use.
    local_ips: OnceLock<Vec<[u8; 4]>>,
    tls_source: TlsSource,
    /// The TLS configuration, loaded the first time TLS could be offered;
    /// `None` if it is unusable (the reason is logged once).
    tls_config: OnceLock<Option<Arc<tls::ServerConfig>>>,
    /// Whether the PEM files hold a certificate and a key (checked once).
    tls_files: OnceLock<bool>,
    /// Client-certificate relaying, loaded with the TLS configuration.
    client_relay: OnceLock<Option<ClientRelay>>,
    /// The host name in CRAM-MD5 challenges.
    cram_host: Vec<u8>,
    /// Challenges made so far (part of each, so none repeats).
    challenges: std::cell::Cell<u32>,
    /// The recipient checks' cdb files.
    rcpt_cdbs: crate::io::rcpt_control::RcptCdbs,
}

impl ControlLookups {
    /// The TLS configuration, loading it on first use.
    pub fn tls_config(&self) -> Option<Arc<tls::ServerConfig>> {
        self.tls_config
            .get_or_init(|| {
                let src = &self.tls_source;
                let ca = self.client_relay().map(|r| &r.auth);
                match tls::server_config(&src.cert, src.key.as_deref(), src.ciphers.as_deref(), ca)
                {
                    Ok((config, warnings)) => {
                        for w in warnings {
                            log::line(&format!("warning: TLS: {w}"));
                        }
                        Some(config)
                    }
                    Err(e) => {
                        log::line(&format!("TLS not available: {e}"));
                        None
                    }
                }
            })
            .clone()
    }
}

/// Relaying for client certificates: the CAs (and CRLs) that verify
/// them, and the addresses of `control/tlsclients`.
pub struct ClientRelay {
    pub auth: tls::ClientAuth,
    pub tlsclients: NameSet,
}

/// The client-certificate files below `control`: `tlsclients`,
/// `clientca.pem`, `clientcrl.pem`.
pub fn client_relay_paths(control: &Path) -> [PathBuf; 3] {
    ["tlsclients", "clientca.pem", "clientcrl.pem"].map(|f| control.join(f))
}

/// Load client-certificate relaying: `Ok(None)` unless both `tlsclients`
/// and `clientca.pem` exist; `clientcrl.pem` is used when it exists.
pub fn load_client_relay(control: &Path) -> Result<Option<ClientRelay>, String> {
    let [clients, ca, crl] = client_relay_paths(control);
    if !ca.exists() {
        return Ok(None);
    }
    let Some(lines) = read_lines(&clients).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let crl = crl.exists().then_some(crl.as_path());
    let auth = tls::ClientAuth::load(&ca, crl).map_err(|e| e.to_string())?;
    Ok(Some(ClientRelay {
        auth,
        tlsclients: NameSet::new(lines),
    }))
}

impl ControlLookups {
    /// Client-certificate relaying, if configured and usable (a problem
    /// is logged once; then no certificate is asked for).
    pub fn client_relay(&self) -> Option<&ClientRelay> {
        self.client_relay
            .get_or_init(|| match load_client_relay(&self.tls_source.control) {
                Ok(r) => r,
                Err(e) => {
                    log::line(&format!(
                        "client certificates not asked for (no relaying by certificate): {e}"
                    ));
                    None
                }
            })
            .as_ref()
    }

    /// The TLS configuration for SNI name `name`, from
    /// `control/servercerts/<name>/servercert.pem`: `None` (the default
    /// certificate) when the name is not a host name, has no directory,
    /// or its file is unusable (logged).
    pub fn sni_config(&self, name: &str) -> Option<Arc<tls::ServerConfig>> {
        let src = &self.tls_source;
        let path = sni_cert_path(&src.control, name.as_bytes())?;
        if !path.exists() {
            return None;
        }
        let ca = self.client_relay().map(|r| &r.auth);
        match tls::server_config(&path, None, src.ciphers.as_deref(), ca) {
            Ok((config, _)) => Some(config),
            Err(e) => {
                log::line(&format!(
                    "TLS: SNI name {name}: {e}: using the default certificate"
                ));
                None
            }
        }
    }
}

/// `control/servercerts/<name>/servercert.pem` for an SNI name that is a
/// host name (lower-cased); `None` for anything else.
pub fn sni_cert_path(control: &Path, name: &[u8]) -> Option<PathBuf> {
    let dir = crate::core::sni::dir_name(name)?;
    Some(control.join("servercerts").join(dir).join("servercert.pem"))
}

impl Lookups for ControlLookups {
    fn more_rcpthosts(&self, domain: &[u8]) -> Result<bool, LookupError> {
        match &self.more_rcpthosts {
            None => Ok(false),
            Some(db) => match db.get(domain) {
                None => Ok(false),
                Some(Ok(_)) => Ok(true),
                Some(Err(_)) => Err(LookupError),
            },
        }
    }

    fn validrcptto(&self, key: &[u8]) -> Result<Option<Vec<u8>>, LookupError> {
        self.rcpt_cdbs.validrcptto(key)
    }

    fn more_validrcptto(&self, key: &[u8]) -> Result<bool, LookupError> {
        self.rcpt_cdbs.more_validrcptto(key)
    }

    fn is_local_ip(&self, ip: [u8; 4]) -> bool {
        self.local_ips.get_or_init(local_ipv4s).contains(&ip)
    }

    /// Cheap: the files parse as PEM with a certificate and a key. The
    /// key itself is loaded (an RSA key check is most of a plain session's
    /// work) only when STARTTLS is asked for, see `tls_ready`.
    fn tls_available(&self) -> bool {
        if let Some(config) = self.tls_config.get() {
            return config.is_some();
        }
        *self.tls_files.get_or_init(|| {
            let src = &self.tls_source;
            match tls::check_pem(&src.cert, src.key.as_deref()) {
                Ok(()) => true,
                Err(e) => {
                    log::line(&format!("TLS not available: {e}"));
                    false
                }
            }
        })
    }

    fn tls_ready(&self) -> bool {
        self.tls_available() && self.tls_config().is_some()
    }

    /// `<pid.count.random.time@host>`: 64 random bits from the kernel, so
    /// challenges repeat neither within a session nor across them.
    fn cram_challenge(&self) -> Vec<u8> {
        let mut random = [0u8; 8];
        if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| {
            use std::io::Read;
            f.read_exact(&mut random)
        }) {
            log::line(&format!("warning: /dev/urandom: {e}"));
        }
        let count = self.challenges.get().wrapping_add(1);
        self.challenges.set(count);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut c = format!(
            "<{}.{count}.{:016x}.{now}@",
            std::process::id(),
            u64::from_be_bytes(random)
        )
        .into_bytes();
        c.extend_from_slice(&self.cram_host);
        c.push(b'>');
        c
    }
}

/// qmail's `ipme`: the addresses of this host's interfaces, plus 127.0.0.1.
fn local_ipv4s() -> Vec<[u8; 4]> {
    let mut ips = vec![[127, 0, 0, 1]];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                ips.push(sin.ip().octets());
            }
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch qmail home, removed when dropped.
    struct Home(PathBuf);

    impl std::ops::Deref for Home {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load_plain(env: &Env) -> Result<Settings, StartupError> {
        load(env, &Invocation::default())
    }

    fn home() -> Home {
        let dir = std::env::temp_dir().join(format!(
            "qsmtpd-control-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("control")).unwrap();
        Home(dir)
    }

    fn write(home: &Path, name: &str, text: &str) {
        std::fs::write(home.join("control").join(name), text).unwrap();
    }

    fn env(home: &Path, extra: &[(&str, &str)]) -> Env {
        let mut v: Vec<(String, String)> =
            vec![("QMAILHOME".into(), home.to_str().unwrap().into())];
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_pairs(v)
    }

    #[test]
    fn reads_qmail_semantics() {
        let h = home();
        write(&h, "me", "mx.example.org  \nignored\n");
        write(
            &h,
            "rcpthosts",
            "# comment\nexample.org\n\n.Example.NET \t\n",
        );
        write(&h, "badmailfrom", "spam@evil.example\n@evil2.example\n");
        write(&h, "databytes", "1000\n");
        write(&h, "timeoutsmtpd", "0\n");
        let s = load_plain(&env(&h, &[("TCPREMOTEIP", "192.0.2.7")])).unwrap();
        assert_eq!(s.config.greeting, b"mx.example.org");
        assert_eq!(
            s.config.localiphost.as_deref(),
            Some(&b"mx.example.org"[..])
        );
        let rh = s.config.rcpthosts.as_ref().unwrap();
        assert!(rh.contains(b"example.org"));
        assert!(rh.contains(b".example.net"));
        assert!(!rh.contains(b"# comment"));
        assert!(s.config.badmailfrom.matches(b"x@EVIL2.example").is_some());
        assert_eq!(s.config.databytes, 1000);
        assert_eq!(
            s.timeout,
            Duration::from_secs(1),
            "timeout 0 becomes 1 as in qmail"
        );
        assert_eq!(s.config.remote_ip, b"192.0.2.7");
        assert_eq!(s.config.remote_host, b"unknown");
        assert_eq!(s.config.local_host, b"unknown");
        assert_eq!(s.queue_program, h.join("bin/qmail-queue"));
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn env_overrides_and_defaults() {
        let h = home();
        write(&h, "me", "me.example");
        write(&h, "smtpgreeting", "greet.example hello");
        write(&h, "databytes", "junk");
        let s = load_plain(&env(
            &h,
            &[
                ("DATABYTES", "42"),
                ("QMAILQUEUE", "/bin/qq"),
                ("TCPLOCALIP", "10.0.0.1"),
                ("RELAYCLIENT", ""),
            ],
        ))
        .unwrap();
        assert_eq!(s.config.greeting, b"greet.example hello");
        assert_eq!(s.config.databytes, 42);
        assert_eq!(s.queue_program, PathBuf::from("/bin/qq"));
        assert_eq!(s.config.local_host, b"10.0.0.1");
        assert_eq!(s.config.relayclient.as_deref(), Some(&b""[..]));
        assert!(s.config.rcpthosts.is_none(), "missing rcpthosts");
        assert_eq!(s.timeout, Duration::from_secs(DEFAULT_TIMEOUT));
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        let s = load_plain(&env(&h, &[("SMTPGREETING", "env.example")])).unwrap();
        assert_eq!(s.config.greeting, b"env.example");
    }

    #[test]
    fn missing_me_and_greeting_is_fatal() {
        let h = home();
        assert!(load_plain(&env(&h, &[])).is_err());
    }

    /// While an index is held, a file its listing lacks is missing without
    /// an open (so a file made after the listing is not seen); listed
    /// files are read; nested guards keep the outer listing.
    #[test]
    fn the_control_index_answers_for_missing_files() {
        let h = home();
        let dir = h.join("control");
        write(&h, "me", "mx.test\n");
        {
            let _outer = ControlIndex::new(&dir);
            write(&h, "databytes", "1000\n");
            {
                let _inner = ControlIndex::new(&dir);
            }
            assert_eq!(
                read_line(&dir.join("me")).unwrap(),
                Some(b"mx.test".to_vec())
            );
            assert_eq!(read_line(&dir.join("databytes")).unwrap(), None);
            assert!(open_cdb(&dir.join("morercpthosts.cdb")).unwrap().is_none());
        }
        assert_eq!(
            read_line(&dir.join("databytes")).unwrap(),
            Some(b"1000".to_vec())
        );
    }

    #[test]
    fn unreadable_control_file_is_fatal() {
        let h = home();
        write(&h, "me", "me.example");
        // A directory where a file is expected cannot be read.
        std::fs::create_dir(h.join("control/badmailfrom")).unwrap();
        match load_plain(&env(&h, &[])) {
            Err(StartupError::Control(e)) => assert!(e.path.ends_with("badmailfrom"), "{e}"),
            _ => panic!("must fail"),
        }
    }

    #[test]
    fn numbers_are_read_as_scan_ulong() {
        assert_eq!(parse_u64(b"12abc"), Some(12));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b" 5"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), Some(u64::MAX));
        let h = home();
        write(&h, "me", "me.example");
        write(&h, "databytes", "2000 bytes\n");
        let s = load_plain(&env(&h, &[])).unwrap();
        assert_eq!(s.config.databytes, 2000);
        let s = load_plain(&env(&h, &[("DATABYTES", "")])).unwrap();
        assert_eq!(
            s.config.databytes, 0,
            "as qmail: empty DATABYTES is no limit"
        );
    }
}
