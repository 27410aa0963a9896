//! `--explain --rcpt ADDR` says which check decides a recipient, and
//! `--check` validates the files of the recipient checks (issue 12).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{text, write_cdb};

struct Home(PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn home(name: &str) -> Home {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("qsmtpd-rcpt-x-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("control/me"), "mx.test\n").unwrap();
    std::fs::write(dir.join("control/rcpthosts"), "example.org\n").unwrap();
    Home(dir)
}

fn run(home: &Path, mode: &[&str], env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let o = Command::new(common::bin())
        .args(mode)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("QMAILHOME", home)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (o.status.code().unwrap(), text(&o))
}

fn explain(home: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let (code, out) = run(home, &["--explain"], env, args);
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
fn explain_names_the_deciding_check() {
    let h = home("explain");
    write_cdb(
        &h.0.join("control/v.cdb"),
        &[("bob@example.org", ""), ("gone@example.org", "-")],
    );
    std::fs::write(h.0.join("control/badhelo"), "^localhost$\n").unwrap();
    std::fs::write(h.0.join("control/badrcptto"), "trap@example.org\n").unwrap();
    let env = [("VALIDRCPTTO_CDB", "control/v.cdb")];
    let out = explain(&h.0, &env, &["--rcpt", "nobody@example.org"]);
    assert!(
        out.contains("553 5.1.1 sorry, this recipient is not in my validrcptto list"),
        "{out}"
    );
    assert!(out.contains("decided by: VALIDRCPTTO_CDB"), "{out}");
    assert!(out.contains("reject: not in VALIDRCPTTO_CDB"), "{out}");
    assert!(out.contains("tried \"@example.org\""), "{out}");

    let out = explain(&h.0, &env, &["--rcpt", "Bob@example.org"]);
    assert!(out.contains("250 2.1.5 ok"), "{out}");
    assert!(out.contains("found \"bob@example.org\""), "{out}");

    let out = explain(&h.0, &env, &["--rcpt", "gone@example.org"]);
    assert!(out.contains("value starts with -"), "{out}");

    let out = explain(
        &h.0,
        &env,
        &["--rcpt", "bob@example.org", "--helo", "LOCALHOST"],
    );
    assert!(out.contains("decided by: control/badhelo"), "{out}");

    let out = explain(&h.0, &env, &["--rcpt", "trap@example.org"]);
    assert!(out.contains("decided by: control/badrcptto"), "{out}");

    let out = explain(&h.0, &env, &["--rcpt", "x@elsewhere.test"]);
    assert!(out.contains("decided by: control/rcpthosts"), "{out}");

    let out = explain(
        &h.0,
        &[("RCPTCHECK", "/bin/false")],
        &["--rcpt", "x@example.org", "--format=json"],
    );
    assert!(out.contains("the RCPTCHECK program decides"), "{out}");
}

fn check(home: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let user = if nix::unistd::geteuid().is_root() {
        "nobody".to_string()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap()
            .name
    };
    let mut env = env.to_vec();
    let q = common::fake_queue();
    env.push(("QMAILQUEUE", q.to_str().unwrap()));
    run(home, &["--check", "--user", &user], &env, &[])
}

#[test]
fn check_validates_the_new_files() {
    let h = home("check");
    std::fs::write(h.0.join("control/badhelo"), "^ok$\nbroken(\n").unwrap();
    std::fs::write(
        h.0.join("control/badrcptto"),
        ".*@spam\\.example\ntrap@example.org\nbad[@x.test\n!^ok@\n",
    )
    .unwrap();
    let script = h.0.join("control/rc.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let (code, out) = check(&h.0, &[("RCPTCHECK", "control/rc.sh")]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: ") && out.contains("pattern \"broken(\" does not compile"),
        "{out}"
    );
    assert!(out.contains("is not executable by"), "{out}");
    // qregex: regular expressions work in badrcptto (a leading ! negates
    // one); one that does not compile is a warning (it still matches as an
    // address).
    assert!(
        out.contains("ok: control/badrcptto: lines: 4, regular expressions compiled: 2"),
        "{out}"
    );
    let bad = out
        .lines()
        .find(|l| l.contains("\"bad[@x.test\" is not a valid regular expression"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(bad.contains("warning: "), "{bad}");

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(h.0.join("control/badhelo"), "^ok$\n!\\.\n").unwrap();
    std::fs::write(h.0.join("control/badrcptto"), "trap@example.org\n").unwrap();
    write_cdb(&h.0.join("control/v.cdb"), &[("a@example.org", "")]);
    let (_, out) = check(
        &h.0,
        &[
            ("RCPTCHECK", "control/rc.sh"),
            ("VALIDRCPTTO_CDB", "control/v.cdb"),
        ],
    );
    assert!(
        out.contains("ok: control/badhelo: 2 patterns compile"),
        "{out}"
    );
    assert!(
        out.contains("ok: RCPTCHECK ") && out.contains("rc.sh is executable"),
        "{out}"
    );
    assert!(out.contains("ok: VALIDRCPTTO_CDB "), "{out}");
    assert!(!out.contains("error: ") || !out.contains("rc.sh"), "{out}");

    let (code, out) = check(&h.0, &[("VALIDRCPTTO_CDB", "control/missing.cdb")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a connection would get 421"), "{out}");
}
