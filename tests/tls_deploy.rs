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
    for (kind, sig) in [("p256", "ECDSA"), ("p384", "ECDSA"), ("ed25519", "ed25519")] {
        let (c, k) = self_signed(&tmp.0, kind, "mx.test");
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
