//! `qmail-smtpd --check`, asserted for representative installations.
//! Permissions are judged as an unprivileged account: `nobody` when the
//! tests run as root (as in CI), else the current user.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fake_checkpassword, fake_queue, make_cert_with};

struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn account() -> String {
    if is_root() {
        "nobody".into()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name
    }
}

/// A certificate valid for `days`, key included, mode 0640, group the
/// account's (so it can read it, others cannot).
fn cert(path: &Path, days: u32) {
    let days = days.to_string();
    make_cert_with(
        path,
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-days",
            &days,
        ],
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        let nogroup = nix::unistd::User::from_name("nobody").unwrap().unwrap().gid;
        nix::unistd::chown(path, None, Some(nogroup)).unwrap();
    }
}

fn home(name: &str) -> Home {
    let dir = std::env::temp_dir().join(format!("qsmtpd-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("control/me"), "mx.test\n").unwrap();
    std::fs::write(dir.join("control/rcpthosts"), "example.org\n").unwrap();
    Home(dir)
}

/// Run --check; returns (exit code, output).
fn check(home: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let user = account();
    let o = Command::new(common::bin())
        .args(["--check", "--user", &user])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("QMAILHOME", home)
        .env("QMAILQUEUE", fake_queue())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8(o.stdout).unwrap(),
    )
}

#[test]
fn a_good_installation_passes() {
    let h = home("good");
    cert(&h.0.join("control/servercert.pem"), 400);
    let cp = fake_checkpassword();
    let (code, out) = check(&h.0, &[], &[cp.to_str().unwrap(), "/bin/true"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("error:"), "{out}");
    assert!(out.contains("ok: control/rcpthosts exists"), "{out}");
    assert!(out.contains("certificate and key load, and match"), "{out}");
    assert!(
        out.contains("the certificate is valid for 400 more days")
            || out.contains("the certificate is valid for 399 more days"),
        "{out}"
    );
    assert!(
        out.contains(&format!("ok: {} is executable", cp.display())),
        "{out}"
    );
}

#[test]
fn key_and_certificate_mistakes_are_found() {
    let h = home("certs");
    let pem = h.0.join("control/servercert.pem");
    cert(&pem, 10);
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&pem, h.0.join("control/clientcert.pem")).unwrap();
    let (code, out) = check(&h.0, &[], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("expires in 10 day(s)") || out.contains("expires in 9 day(s)"),
        "{out}"
    );
    assert!(
        out.contains("servercert.pem is readable by every user"),
        "{out}"
    );
    assert!(out.contains("clientcert.pem is the same file as"), "{out}");

    // A key that does not belong to the certificate.
    let other = h.0.join("other.pem");
    cert(&other, 10);
    let text = std::fs::read_to_string(&pem).unwrap();
    let other_text = std::fs::read_to_string(&other).unwrap();
    let key_at = other_text.find("-----BEGIN PRIVATE KEY").unwrap();
    let cert_end = text.find("-----BEGIN PRIVATE KEY").unwrap();
    std::fs::write(
        &pem,
        format!("{}{}", &text[..cert_end], &other_text[key_at..]),
    )
    .unwrap();
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = check(&h.0, &[], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("certificate or key"), "{out}");
    assert!(
        !out.contains("PRIVATE KEY"),
        "no PEM text in the output: {out}"
    );
    if is_root() {
        assert!(out.contains("is not readable by nobody"), "{out}");
    }
}

#[test]
fn configuration_errors_are_found() {
    let h = home("config");
    std::fs::remove_file(h.0.join("control/rcpthosts")).unwrap();
    let (code, out) = check(
        &h.0,
        &[("RELAYCLIENT", "")],
        &["/nonexistent/checkpassword", "/bin/true"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: ") && out.contains("rcpthosts is missing"),
        "{out}"
    );
    assert!(
        out.contains("RELAYCLIENT is set for every client of this service"),
        "{out}"
    );
    assert!(
        out.contains("/nonexistent/checkpassword not found"),
        "{out}"
    );
    assert!(
        out.contains("servercert.pem does not exist: STARTTLS is not offered"),
        "{out}"
    );

    let h = home("contradiction");
    let (code, out) = check(&h.0, &[("FORCE_TLS", "1"), ("DENY_TLS", "1")], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: a connection would get 421"), "{out}");
    let (code, out) = check(&h.0, &[("REQUIRE_AUTH", "1")], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no checkpassword program is given"), "{out}");
    let (code, out) = check(
        &h.0,
        &[("ALLOW_INSECURE_AUTH", "1")],
        &["/bin/true", "/bin/true"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: ALLOW_INSECURE_AUTH/FORCETLS=0: passwords may cross"),
        "{out}"
    );
}

/// The PROXY protocol: set for everybody, or by a balancer rule that would
/// let every client through it relay, or with rules nobody can read.
#[test]
fn proxy_protocol_mistakes_are_found() {
    let h = home("proxy");
    let (code, out) = check(&h.0, &[("PROXY_PROTOCOL", "1")], &[]);
    assert!(
        out.contains("warning: PROXY_PROTOCOL is set for every client of this service"),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");

    let real = h.0.join("real.cdb");
    let write_rules = |text: &str, cdb: &Path| {
        std::fs::write(h.0.join("rules.txt"), text).unwrap();
        let o = Command::new("tcprules")
            .arg(cdb)
            .arg(h.0.join("rules.tmp"))
            .stdin(std::fs::File::open(h.0.join("rules.txt")).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success());
    };
    write_rules("192.0.2.7:allow,RELAYCLIENT=\"\"\n", &real);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rules = h.0.join("tcp.smtp.cdb");
    write_rules(
        &format!(
            "10.0.0.5:allow,PROXY_PROTOCOL=\"1\",RELAYCLIENT=\"\"\n\
             10.0.0.6:allow,PROXY_PROTOCOL=\"1\",PROXY_RULES=\"{}\"\n\
             :allow,PROXY_PROTOCOL=\"1\",PROXY_RULES=\"/nonexistent.cdb\"\n",
            real.display()
        ),
        &rules,
    );
    let (code, out) = check(&h.0, &[], &["--rules", rules.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "error: the rule \"10.0.0.5\" sets PROXY_PROTOCOL and RELAYCLIENT without PROXY_RULES"
        ),
        "{out}"
    );
    assert!(
        out.contains("warning: the default rule of") && out.contains("sets PROXY_PROTOCOL"),
        "{out}"
    );
    assert!(
        out.contains("error: PROXY_RULES /nonexistent.cdb:"),
        "{out}"
    );
    if is_root() {
        assert!(
            out.contains(&format!(
                "error: PROXY_RULES {} is not readable by nobody",
                real.display()
            )),
            "{out}"
        );
    }
}
