//! TLS for real deployments, end to end through tcpserver: the server's
//! cipher order, ECDSA and RSA chains side by side, SNI certificates and
//! client-certificate relay. Clients: openssl s_client, Python ssl, swaks.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Server, Setup, need, text};

/// One handshake with `openssl s_client -brief`, STARTTLS unless `smtps`;
/// stdin is empty, so s_client leaves right after the handshake. Returns
/// all it printed.
fn handshake(srv: &Server, smtps: bool, args: &[&str]) -> String {
    need("openssl");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-brief", "-connect", &srv.addr()]);
    if !smtps {
        cmd.args(["-starttls", "smtp"]);
    }
    let o = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    text(&o)
}

/// The value of a `-brief` line such as `Ciphersuite: X`.
fn brief<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.trim().strip_prefix(':'))
        .map(str::trim)
}

#[test]
fn the_server_order_of_cipher_suites_decides() {
    for smtps in [false, true] {
        let mut setup = Setup::new("cipher-order").cert();
        if smtps {
            setup = setup.env("SMTPS", "1");
        }
        let srv = setup.start();
        // The client prefers AES-128; rustls' order puts AES-256 first.
        let out = handshake(
            &srv,
            smtps,
            &[
                "-tls1_2",
                "-cipher",
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
            ],
        );
        assert_eq!(
            brief(&out, "Ciphersuite"),
            Some("ECDHE-RSA-AES256-GCM-SHA384"),
            "smtps={smtps}: {out}"
        );
        let out = handshake(
            &srv,
            smtps,
            &[
                "-tls1_3",
                "-ciphersuites",
                "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
            ],
        );
        assert_eq!(
            brief(&out, "Ciphersuite"),
            Some("TLS_AES_256_GCM_SHA384"),
            "smtps={smtps}: {out}"
        );
    }
    // TLSCIPHERS narrows and orders: its first entry wins over the
    // client's preference.
    let srv = Setup::new("cipher-order-env")
        .cert()
        .env(
            "TLSCIPHERS",
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        )
        .start();
    let out = handshake(
        &srv,
        false,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256",
        ],
    );
    assert_eq!(
        brief(&out, "Ciphersuite"),
        Some("ECDHE-RSA-AES128-GCM-SHA256"),
        "{out}"
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    need("openssl");
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
}

/// `openssl req` key options for each kind of key the tests use.
fn key_options(kind: &str) -> Vec<&'static str> {
    match kind {
        "rsa" => vec!["-newkey", "rsa:2048"],
        "p256" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "ed25519" => vec!["-newkey", "ed25519"],
        _ => panic!("{kind}"),
    }
}

/// A self-signed certificate for `cn` with a fresh key of `kind`:
/// (certificate PEM, key PEM).
fn self_signed(dir: &Path, kind: &str, cn: &str) -> (String, String) {
    let mut args = vec!["req", "-x509", "-nodes", "-days", "400"];
    args.extend(key_options(kind));
    let subj = format!("/CN={cn}");
    args.extend(["-subj", &subj, "-keyout", "k.tmp", "-out", "c.tmp"]);
    openssl(dir, &args);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("c.tmp"), read("k.tmp"))
}

/// A scratch directory for certificates, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("qsmtpd-certs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn ecdsa_and_ed25519_keys_serve_starttls_and_smtps() {
    let tmp = Scratch::new("single");
    for (kind, sig) in [
        ("p256", "ECDSA"),
        ("p256-sec1", "ECDSA"),
        ("p384", "ECDSA"),
        ("ed25519", "ed25519"),
    ] {
        let (c, mut k) = self_signed(&tmp.0, kind.trim_end_matches("-sec1"), "mx.test");
        if kind.ends_with("-sec1") {
            // The same key as "EC PRIVATE KEY" (SEC1), as older tools write it.
            openssl(&tmp.0, &["ec", "-in", "k.tmp", "-out", "sec1.tmp"]);
            k = std::fs::read_to_string(tmp.0.join("sec1.tmp")).unwrap();
            assert!(k.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{k}");
        }
        for smtps in [false, true] {
            let mut setup = Setup::new("ecdsa").control("servercert.pem", &(c.clone() + &k));
            if smtps {
                setup = setup.env("SMTPS", "1");
            }
            let srv = setup.start();
            let out = handshake(&srv, smtps, &[]);
            assert_eq!(
                brief(&out, "Protocol version"),
                Some("TLSv1.3"),
                "{kind}: {out}"
            );
            assert_eq!(brief(&out, "Signature type"), Some(sig), "{kind}: {out}");
            // TLS 1.2 uses the ECDHE-ECDSA suites.
            let out = handshake(&srv, smtps, &["-tls1_2"]);
            assert!(
                brief(&out, "Ciphersuite").is_some_and(|c| c.starts_with("ECDHE-ECDSA-")),
                "{kind}: {out}"
            );
        }
    }
}

#[test]
fn rsa_and_ecdsa_side_by_side_each_client_gets_one_it_can_verify() {
    let tmp = Scratch::new("dual");
    let (ec, ec_key) = self_signed(&tmp.0, "p256", "ec.mx.test");
    let (rsa, rsa_key) = self_signed(&tmp.0, "rsa", "rsa.mx.test");
    // Keys and certificates in any order.
    let files = [
        [&rsa_key, &ec, &rsa, &ec_key].map(|s| s.as_str()).concat(),
        [&rsa, &rsa_key, &ec, &ec_key].map(|s| s.as_str()).concat(),
        [&ec_key, &rsa_key, &rsa, &ec].map(|s| s.as_str()).concat(),
    ];
    for (n, file) in files.iter().enumerate() {
        for smtps in [false, true] {
            let mut setup = Setup::new("dual").control("servercert.pem", file);
            if smtps {
                setup = setup.env("SMTPS", "1");
            }
            let srv = setup.start();
            let cn = |out: &str| brief(out, "Peer certificate").map(str::to_string);
            // A modern client: ECDSA first.
            let out = handshake(&srv, smtps, &[]);
            assert_eq!(
                cn(&out).as_deref(),
                Some("CN = ec.mx.test"),
                "file {n}: {out}"
            );
            let out = handshake(&srv, smtps, &["-tls1_2"]);
            assert_eq!(
                cn(&out).as_deref(),
                Some("CN = ec.mx.test"),
                "file {n}: {out}"
            );
            // Only RSA signature schemes: the RSA chain.
            let out = handshake(&srv, smtps, &["-sigalgs", "RSA-PSS+SHA256:RSA+SHA256"]);
            assert_eq!(
                cn(&out).as_deref(),
                Some("CN = rsa.mx.test"),
                "file {n}: {out}"
            );
            assert_eq!(brief(&out, "Protocol version"), Some("TLSv1.3"), "{out}");
            // TLS 1.2 with only ECDHE-RSA suites: the RSA chain.
            let out = handshake(
                &srv,
                smtps,
                &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
            );
            assert_eq!(
                cn(&out).as_deref(),
                Some("CN = rsa.mx.test"),
                "file {n}: {out}"
            );
            assert_eq!(
                brief(&out, "Ciphersuite"),
                Some("ECDHE-RSA-AES128-GCM-SHA256"),
                "{out}"
            );
        }
    }
}

#[test]
fn a_key_without_its_certificate_is_reported() {
    let tmp = Scratch::new("orphan");
    let (ec, ec_key) = self_signed(&tmp.0, "p256", "ec.mx.test");
    let (_, rsa_key) = self_signed(&tmp.0, "rsa", "rsa.mx.test");
    let srv = Setup::new("orphan")
        .control("servercert.pem", &(ec + &ec_key + &rsa_key))
        .start();
    let out = handshake(&srv, false, &[]);
    assert!(!out.contains("Ciphersuite"), "{out}");
    let log = srv.stderr_log();
    assert!(log.contains("matches no certificate"), "{log}");
}

/// `qmail-smtpd --check` with QMAILHOME `home`, judged for the current
/// user: (exit code, output).
fn check(home: &Path) -> (i32, String) {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let o = Command::new(common::bin())
        .args(["--check", "--user", &me])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("QMAILHOME", home)
        .env("QMAILQUEUE", common::fake_queue())
        .output()
        .unwrap();
    (o.status.code().unwrap(), text(&o))
}

/// A QMAILHOME with `me`, `rcpthosts` and the given control files (mode
/// 0600).
fn home(tmp: &Scratch, files: &[(&str, &str)]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let h = tmp.0.join("home");
    let _ = std::fs::remove_dir_all(&h);
    std::fs::create_dir_all(h.join("control")).unwrap();
    let mut all = vec![("me", "mx.test\n"), ("rcpthosts", "example.org\n")];
    all.extend_from_slice(files);
    for (name, text) in all {
        let p = h.join("control").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    h
}

#[test]
fn check_lists_every_key_of_a_dual_file() {
    let tmp = Scratch::new("check-dual");
    let (ec, ec_key) = self_signed(&tmp.0, "p256", "ec.mx.test");
    let (rsa, rsa_key) = self_signed(&tmp.0, "rsa", "rsa.mx.test");
    let h = home(
        &tmp,
        &[("servercert.pem", &(rsa_key + &ec + &rsa + &ec_key))],
    );
    let (code, out) = check(&h);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("servercert.pem: ECDSA key and certificate load, and match (chain of 1)"),
        "{out}"
    );
    assert!(
        out.contains("servercert.pem: RSA key and certificate load, and match (chain of 1)"),
        "{out}"
    );
    assert!(out.contains("the ECDSA certificate is valid for "), "{out}");
    assert!(out.contains("the RSA certificate is valid for "), "{out}");
}

#[test]
fn sni_picks_the_certificate_of_the_name_else_the_default() {
    let tmp = Scratch::new("sni");
    let (c, k) = self_signed(&tmp.0, "p256", "mail.example.org");
    let named = c + &k;
    let (evil_c, evil_k) = self_signed(&tmp.0, "p256", "evil");
    let evil = evil_c + &evil_k;
    for smtps in [false, true] {
        let mut setup = Setup::new("sni").cert();
        if smtps {
            setup = setup.env("SMTPS", "1");
        }
        let srv = setup.start();
        // Files are read per connection: they can come after the start.
        put(
            &srv.dir,
            "servercerts/mail.example.org/servercert.pem",
            &named,
        );
        put(&srv.dir, "servercerts/x/.keep", "");
        put(
            &srv.dir,
            "servercerts/broken.example/servercert.pem",
            "garbage\n",
        );
        // Where hostile names would lead if they reached the file system.
        put(&srv.dir, "evil/servercert.pem", &evil);
        put(&srv.dir, "servercerts/evil/servercert.pem", &evil);
        let cn = |args: &[&str]| {
            let out = handshake(&srv, smtps, args);
            assert!(brief(&out, "Ciphersuite").is_some(), "{args:?}: {out}");
            brief(&out, "Peer certificate").map(str::to_string).unwrap()
        };
        for name in ["mail.example.org", "MAIL.Example.ORG"] {
            assert_eq!(cn(&["-servername", name]), "CN = mail.example.org");
        }
        // A miss, no name, a broken file, and a name rustls takes but that
        // is not a host name: the default certificate.
        for args in [
            &["-servername", "other.example"][..],
            &["-noservername"],
            &["-servername", "broken.example"],
            &["-servername", "under_score.example"],
            &["-servername", "x"],
        ] {
            assert_eq!(cn(args), "CN = mx.test", "{args:?}");
        }
        // Names with slashes or empty labels: rustls ends the handshake
        // with illegal_parameter (RFC 6066) before our code sees them.
        for name in [
            "../evil",
            "x/../evil",
            "evil/",
            "x/../mail.example.org",
            "..",
        ] {
            let out = handshake(&srv, smtps, &["-servername", name]);
            assert!(brief(&out, "Ciphersuite").is_none(), "{name}: {out}");
            assert!(!out.contains("CN = evil"), "{name}: {out}");
        }
        let log = srv.stderr_log();
        assert!(
            log.contains("TLS: SNI name broken.example: ")
                && log.contains("using the default certificate"),
            "{log}"
        );
    }
}

#[test]
fn check_lists_and_verifies_sni_certificates() {
    let tmp = Scratch::new("check-sni");
    let (c, k) = self_signed(&tmp.0, "p256", "mail.example.org");
    let (other_c, _) = self_signed(&tmp.0, "p256", "other");
    let h = home(
        &tmp,
        &[
            ("servercert.pem", &(c.clone() + &k)),
            ("servercerts/mail.example.org/servercert.pem", &(c + &k)),
            ("servercerts/bad.example/servercert.pem", &(other_c + &k)),
            ("servercerts/Upper.Example/servercert.pem", "x"),
        ],
    );
    let (code, out) = check(&h);
    assert_eq!(code, 1, "{out}");
    let line =
        |start: &str, has: &str| out.lines().any(|l| l.starts_with(start) && l.contains(has));
    assert!(line("ok: SNI name mail.example.org", ""), "{out}");
    assert!(
        line(
            "ok: ",
            "servercerts/mail.example.org/servercert.pem: certificate and key load, and match"
        ),
        "{out}"
    );
    assert!(
        line("error: ", "servercerts/bad.example/servercert.pem")
            && line(
                "error: ",
                "clients asking for bad.example get the default certificate"
            ),
        "{out}"
    );
    assert!(
        line("warning: ", "Upper.Example: not a lower-case host name"),
        "{out}"
    );
}

/// Write `control/<rel>` below `home`, making its directories.
fn put(home: &Path, rel: &str, text: &str) {
    let p = home.join("control").join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

// ---- Client certificates --------------------------------------------

const CA_CONF: &str = "[ca]
default_ca = ca_default
[ca_default]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
crlnumber = crlnumber
certificate = ca.pem
private_key = ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = any
x509_extensions = client
unique_subject = no
[any]
commonName = supplied
emailAddress = optional
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[client_san]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = email:alt@example.org
[server_only]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
";

/// A test CA in its own directory, made with `openssl ca`.
struct Ca {
    dir: std::path::PathBuf,
}

impl Ca {
    fn new(parent: &Path, name: &str) -> Ca {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.cnf"), CA_CONF).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "01\n").unwrap();
        std::fs::write(dir.join("crlnumber"), "01\n").unwrap();
        let subj = format!("/CN=Test {name}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "30"];
        args.extend(key_options("p256"));
        args.extend([
            "-subj",
            &subj,
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&dir, &args);
        Ca { dir }
    }

    fn pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("ca.pem")).unwrap()
    }

    /// Issue a client certificate: returns the paths of its certificate
    /// and key. `extra` goes to `openssl ca` (dates, extensions).
    fn issue(&self, name: &str, subj: &str, extra: &[&str]) -> (String, String) {
        let (csr, key, pem) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
        );
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend(key_options("p256"));
        args.extend(["-subj", subj, "-keyout", &key, "-out", &csr]);
        openssl(&self.dir, &args);
        let mut args = vec![
            "ca", "-batch", "-notext", "-config", "ca.cnf", "-in", &csr, "-out", &pem,
        ];
        args.extend_from_slice(extra);
        openssl(&self.dir, &args);
        let path = |f: &str| self.dir.join(f).to_str().unwrap().to_string();
        (path(&pem), path(&key))
    }

    fn revoke(&self, cert: &str) {
        openssl(&self.dir, &["ca", "-config", "ca.cnf", "-revoke", cert]);
    }

    fn crl(&self) -> String {
        openssl(
            &self.dir,
            &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"],
        );
        std::fs::read_to_string(self.dir.join("crl.pem")).unwrap()
    }
}

/// A session with Python's ssl presenting `cert` (`None`: no
/// certificate), STARTTLS or SMTPS: the RCPT reply for `rcpt`, then DATA
/// if it was accepted. Returns "<code> <text>" of the RCPT.
fn python_rcpt(srv: &Server, smtps: bool, cert: Option<&(String, String)>, rcpt: &str) -> String {
    python_rcpt_with(srv, smtps, cert, rcpt, "")
}

/// The same, with more Python lines for the context `ctx`.
fn python_rcpt_with(
    srv: &Server,
    smtps: bool,
    cert: Option<&(String, String)>,
    rcpt: &str,
    setup: &str,
) -> String {
    let load = match cert {
        Some((c, k)) => format!("ctx.load_cert_chain({c:?}, {k:?})"),
        None => String::new(),
    };
    let connect = if smtps {
        format!(
            "s = smtplib.SMTP_SSL('127.0.0.1', {}, context=ctx, timeout=20)",
            srv.port
        )
    } else {
        format!(
            "s = smtplib.SMTP('127.0.0.1', {}, timeout=20)\ns.starttls(context=ctx)",
            srv.port
        )
    };
    common::python(&format!(
        "import smtplib, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
{setup}
{load}
{connect}
s.ehlo('client.test')
s.mail('a@sender.test')
code, msg = s.rcpt({rcpt:?})
print(code, msg.decode())
if code == 250:
    s.data(b'Subject: t\\r\\n\\r\\nhi\\r\\n')
s.quit()
"
    ))
    .trim()
    .to_string()
}

const NO_CERT_RELAY: &str = "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts; no valid cert for gatewaying: ";

#[test]
fn client_certificates_relay_only_when_verified_and_listed() {
    let tmp = Scratch::new("clientcert");
    let ca = Ca::new(&tmp.0, "ca1");
    let foreign = Ca::new(&tmp.0, "ca2");
    let listed = ca.issue("listed", "/CN=client/emailAddress=Relay@Example.ORG", &[]);
    let san = ca.issue("san", "/CN=san client", &["-extensions", "client_san"]);
    let unlisted = ca.issue("unlisted", "/CN=x/emailAddress=other@example.org", &[]);
    let no_email = ca.issue("noemail", "/CN=no email", &[]);
    let revoked = ca.issue("revoked", "/CN=r/emailAddress=relay@example.org", &[]);
    ca.revoke(&revoked.0);
    let expired = ca.issue(
        "expired",
        "/CN=e/emailAddress=relay@example.org",
        &[
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
        ],
    );
    let server_only = ca.issue(
        "serveronly",
        "/CN=s/emailAddress=relay@example.org",
        &["-extensions", "server_only"],
    );
    let stranger = foreign.issue("stranger", "/CN=f/emailAddress=relay@example.org", &[]);

    let srv = Setup::new("clientcert")
        .cert()
        .record_env()
        .control("clientca.pem", &ca.pem())
        .control("clientcrl.pem", &ca.crl())
        .control("tlsclients", "relay@example.org\nalt@example.org\n")
        .start();
    let far = "x@elsewhere.test";
    assert_eq!(python_rcpt(&srv, false, Some(&listed), far), "250 2.1.5 ok");
    assert_eq!(python_rcpt(&srv, false, Some(&san), far), "250 2.1.5 ok");
    for (cert, why) in [
        (Some(&unlisted), "email address not in tlsclients"),
        (Some(&no_email), "no email address in the certificate"),
        (None, "no certificate"),
        (
            Some(&stranger),
            "not verified: invalid peer certificate: UnknownIssuer",
        ),
        (
            Some(&revoked),
            "not verified: invalid peer certificate: Revoked",
        ),
        (
            Some(&expired),
            "not verified: invalid peer certificate: certificate expired",
        ),
        (
            Some(&server_only),
            "not verified: invalid peer certificate: ",
        ),
    ] {
        let r = python_rcpt(&srv, false, cert, far);
        assert!(
            r.starts_with(&format!("{NO_CERT_RELAY}{why}")),
            "{cert:?}: {r}"
        );
        // Our own domains are accepted whatever the certificate.
        let r = python_rcpt(&srv, false, cert, "u@example.org");
        assert_eq!(r, "250 2.1.5 ok", "{cert:?}");
    }
    let q = srv.queued();
    assert!(
        q[0].0.contains(" with ESMTPS (TLSv1.3 TLS13_")
            && q[0].0.contains(")\n  (cert Relay@Example.ORG); "),
        "{}",
        q[0].0
    );
    assert!(
        q[1].0.contains("\n  (cert alt@example.org); "),
        "{}",
        q[1].0
    );
    assert!(!q[2].0.contains("(cert "), "{}", q[2].0);
    let env = std::fs::read_to_string(srv.dir.join("queue/tls-env")).unwrap();
    assert!(
        env.contains("TLS_CLIENT_EMAIL=Relay@Example.ORG\n"),
        "{env}"
    );
    assert_eq!(env.matches("TLS_CLIENT_EMAIL=").count(), 2, "{env}");
    // One log line per TLS session (16 sessions, plus none for the probe).
    let log = srv.stderr_log();
    assert_eq!(log.matches(": client certificate: ").count(), 16, "{log}");
    assert!(
        log.contains("client certificate: relaying allowed for \"Relay@Example.ORG\""),
        "{log}"
    );
    assert!(log.contains(" cert=\"Relay@Example.ORG\""), "{log}");

    // TLS 1.2 asks and verifies the same way.
    let tls12 = "ctx.maximum_version = ssl.TLSVersion.TLSv1_2";
    assert_eq!(
        python_rcpt_with(&srv, false, Some(&listed), far, tls12),
        "250 2.1.5 ok"
    );
    let r = python_rcpt_with(&srv, false, Some(&stranger), far, tls12);
    assert!(
        r.starts_with(&format!("{NO_CERT_RELAY}not verified: ")),
        "{r}"
    );
    let env = std::fs::read_to_string(srv.dir.join("queue/tls-env")).unwrap();
    assert!(env.contains("TLS_PROTOCOL=TLSv1.2\n"), "{env}");

    // SMTPS, and swaks.
    let srv = Setup::new("clientcert-smtps")
        .cert()
        .env("SMTPS", "1")
        .control("clientca.pem", &ca.pem())
        .control("tlsclients", "relay@example.org\n")
        .start();
    assert_eq!(python_rcpt(&srv, true, Some(&listed), far), "250 2.1.5 ok");
    let r = python_rcpt(&srv, true, Some(&stranger), far);
    assert!(
        r.starts_with(&format!("{NO_CERT_RELAY}not verified: ")),
        "{r}"
    );
    let o = srv.swaks(&[
        "--tls-on-connect",
        "--tls-cert",
        &listed.0,
        "--tls-key",
        &listed.1,
        "--to",
        far,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = srv.swaks(&["--tls-on-connect", "--to", far]);
    assert!(
        text(&o).contains(&format!("{NO_CERT_RELAY}no certificate")),
        "{}",
        text(&o)
    );
    let srv = Setup::new("clientcert-swaks")
        .cert()
        .control("clientca.pem", &ca.pem())
        .control("tlsclients", "relay@example.org\n")
        .start();
    let o = srv.swaks(&[
        "--tls",
        "--tls-cert",
        &listed.0,
        "--tls-key",
        &listed.1,
        "--to",
        far,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(srv.queued().len(), 1);
}

#[test]
fn a_certificate_is_asked_for_only_with_tlsclients_and_clientca() {
    let tmp = Scratch::new("certreq");
    let ca = Ca::new(&tmp.0, "ca1");
    let listed = ca.issue("listed", "/CN=client/emailAddress=relay@example.org", &[]);
    let asks = |files: &[(&'static str, &str)]| {
        let mut setup = Setup::new("certreq").cert();
        for (f, t) in files {
            setup = setup.control(f, t);
        }
        let srv = setup.start();
        let o = Command::new("openssl")
            .args(["s_client", "-starttls", "smtp", "-connect", &srv.addr()])
            .args(["-cert", &listed.0, "-key", &listed.1])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = text(&o);
        assert!(
            out.contains("Cipher is") || out.contains("Ciphersuite"),
            "{out}"
        );
        if out.contains("No client certificate CA names sent") {
            false
        } else {
            assert!(
                out.contains("Acceptable client certificate CA names"),
                "{out}"
            );
            assert!(out.contains("CN = Test ca1"), "{out}");
            true
        }
    };
    let ca_pem = ca.pem();
    assert!(asks(&[("clientca.pem", &ca_pem), ("tlsclients", "a@b\n")]));
    assert!(!asks(&[("clientca.pem", &ca_pem)]));
    assert!(!asks(&[("tlsclients", "a@b\n")]));
    assert!(!asks(&[]));
    // A broken clientca.pem: no request, TLS still works, logged.
    assert!(!asks(&[
        ("clientca.pem", "junk\n"),
        ("tlsclients", "a@b\n")
    ]));
}

#[test]
fn check_and_explain_describe_client_certificate_relaying() {
    let tmp = Scratch::new("check-clientca");
    let ca = Ca::new(&tmp.0, "ca1");
    let (c, k) = self_signed(&tmp.0, "p256", "mx.test");
    let server = c + &k;
    let fresh = ca.crl();
    openssl(
        &ca.dir,
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-gencrl",
            "-crl_lastupdate",
            "20200101000000Z",
            "-crl_nextupdate",
            "20200201000000Z",
            "-out",
            "old.pem",
        ],
    );
    let stale = std::fs::read_to_string(ca.dir.join("old.pem")).unwrap();
    let ca_pem = ca.pem();
    let good = [
        ("servercert.pem", server.as_str()),
        ("clientca.pem", &ca_pem),
        ("clientcrl.pem", &fresh),
        ("tlsclients", "relay@example.org\nalt@example.org\n"),
    ];
    let h = home(&tmp, &good);
    let (code, out) = check(&h);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok: ")
            && out.contains("client certificates asked for: CAs from ")
            && out.contains("2 address(es) in "),
        "{out}"
    );
    assert!(
        out.contains("clientcrl.pem: CRL 1 is current for "),
        "{out}"
    );

    // --explain says it too.
    let o = Command::new(common::bin())
        .arg("--explain")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("QMAILHOME", &h)
        .output()
        .unwrap();
    let out = text(&o);
    assert!(
        out.contains("client certificate: asked for (optional) in the TLS handshake")
            && out.contains("one of the 2 in "),
        "{out}"
    );

    // A stale CRL, a garbled CA file, one file without the other.
    let h = home(
        &tmp,
        &[good[0], good[1], ("clientcrl.pem", &stale), good[3]],
    );
    let (code, out) = check(&h);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CRL 1 is past its next update"), "{out}");
    let h = home(&tmp, &[good[0], ("clientca.pem", "junk\n"), good[3]]);
    let (code, out) = check(&h);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("clientca.pem: no usable CA certificate")
            || out.contains("clientca.pem: CA certificate"),
        "{out}"
    );
    let h = home(&tmp, &[good[0], good[1]]);
    let (_, out) = check(&h);
    assert!(
        out.contains("clientca.pem exists but")
            && out.contains("no client certificate is asked for"),
        "{out}"
    );
    let o = Command::new(common::bin())
        .arg("--explain")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("QMAILHOME", &h)
        .output()
        .unwrap();
    assert!(
        text(&o).contains("client certificate: not asked for: "),
        "{}",
        text(&o)
    );
}

/// A leaf for `cn` with a `kind` key, issued by a CA of the same kind
/// named `ca_cn`: (leaf PEM, leaf key PEM, CA PEM).
fn issued(dir: &Path, kind: &str, cn: &str, ca_cn: &str) -> (String, String, String) {
    let (ca, ca_key) = self_signed(dir, kind, ca_cn);
    std::fs::write(dir.join("ca.tmp"), &ca).unwrap();
    std::fs::write(dir.join("cakey.tmp"), &ca_key).unwrap();
    // Extensions make it X.509 v3: webpki reads no v1 certificate.
    std::fs::write(dir.join("ext.tmp"), "basicConstraints=CA:FALSE\n").unwrap();
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(key_options(kind));
    let subj = format!("/CN={cn}");
    args.extend(["-subj", &subj, "-keyout", "k.tmp", "-out", "csr.tmp"]);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "csr.tmp",
            "-CA",
            "ca.tmp",
            "-CAkey",
            "cakey.tmp",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.tmp",
            "-out",
            "c.tmp",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("c.tmp"), read("k.tmp"), ca)
}

#[test]
fn with_several_keys_each_chain_follows_its_issuers() {
    let tmp = Scratch::new("chains");
    let (ec, ec_key, ec_ca) = issued(&tmp.0, "p256", "ec.mx.test", "EC Issuer");
    let (rsa, rsa_key, rsa_ca) = issued(&tmp.0, "rsa", "rsa.mx.test", "RSA Issuer");
    // Scrambled: each leaf's issuer is somewhere else in the file.
    let file = [&ec_key, &rsa_ca, &rsa, &ec_ca, &rsa_key, &ec]
        .map(|s| s.as_str())
        .concat();
    let srv = Setup::new("chains")
        .control("servercert.pem", &file)
        .start();
    let chain = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(["s_client", "-starttls", "smtp", "-connect", &srv.addr()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = text(&o);
        let subjects: Vec<String> = out
            .lines()
            .filter_map(|l| l.trim().split_once(" s:").map(|(_, s)| s.to_string()))
            .collect();
        assert!(!subjects.is_empty(), "{out}\n{}", srv.stderr_log());
        subjects
    };
    assert_eq!(chain(&[]), ["CN = ec.mx.test", "CN = EC Issuer"]);
    assert_eq!(
        chain(&["-sigalgs", "RSA-PSS+SHA256"]),
        ["CN = rsa.mx.test", "CN = RSA Issuer"]
    );
    let h = home(&tmp, &[("servercert.pem", &file)]);
    let (code, out) = check(&h);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ECDSA key and certificate load, and match (chain of 2)"),
        "{out}"
    );
    assert!(
        out.contains("RSA key and certificate load, and match (chain of 2)"),
        "{out}"
    );
}
