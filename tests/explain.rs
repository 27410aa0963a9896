//! `qmail-smtpd --explain`: asserted for representative setups, with a
//! real tcprules CDB.

mod common;

use std::path::Path;
use std::process::Command;

use common::{make_cert, need, text};

struct Home(std::path::PathBuf);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn home(name: &str, cert: bool, rules: &str) -> Home {
    need("tcprules");
    let dir = std::env::temp_dir().join(format!("qsmtpd-explain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("control")).unwrap();
    std::fs::write(dir.join("control/me"), "mx.test\n").unwrap();
    std::fs::write(dir.join("control/rcpthosts"), "example.org\n").unwrap();
    if cert {
        make_cert(&dir.join("control/servercert.pem"));
    }
    std::fs::write(dir.join("rules.txt"), rules).unwrap();
    let o = Command::new("tcprules")
        .arg(dir.join("rules.cdb"))
        .arg(dir.join("rules.tmp"))
        .stdin(std::fs::File::open(dir.join("rules.txt")).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    Home(dir)
}

fn explain(home: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let o = Command::new(common::bin())
        .arg("--explain")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("QMAILHOME", home)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

const RULES: &str = "127.0.0.1:allow,RELAYCLIENT=\"\"\n203.0.113.:allow,DENY_TLS=\"1\"\n\
                     198.51.100.7:allow,FORCE_TLS=\"1\",DENY_TLS=\"1\"\n10.:deny\n:allow\n";

#[test]
fn port_25_seen_from_several_addresses() {
    let h = home("mx", true, RULES);
    let rules = h.0.join("rules.cdb");
    let rules = rules.to_str().unwrap();
    let run = |ip: &str| explain(&h.0, &[], &["--rules", rules, "--ip", ip]);

    let out = run("192.0.2.1");
    assert!(
        out.contains("client: 192.0.2.1: the default rule: allow"),
        "{out}"
    );
    assert!(out.contains("    250 STARTTLS\n"), "{out}");
    assert!(out.contains("STARTTLS: offered\n"), "{out}");
    assert!(
        out.contains("AUTH: before TLS: not offered; AUTH gets 503 5.5.1 AUTH not available"),
        "{out}"
    );
    assert!(
        out.contains("relaying: only domains in control/rcpthosts"),
        "{out}"
    );
    assert!(
        !out.contains("after AUTH"),
        "no AUTH without checkpassword: {out}"
    );

    let out = run("203.0.113.9");
    assert!(
        out.contains("rule \"203.0.113.\": allow, sets DENY_TLS=\"1\""),
        "{out}"
    );
    assert!(
        out.contains("STARTTLS: not offered to this client\n    decided by: DENY_TLS=1 [jms1]"),
        "{out}"
    );
    assert!(!out.contains("250 STARTTLS"), "{out}");

    let out = run("127.0.0.1");
    assert!(
        out.contains("relaying: every recipient accepted (RELAYCLIENT is set"),
        "{out}"
    );
    assert!(out.contains("RELAYCLIENT= [qmail]"), "{out}");

    let out = run("198.51.100.7");
    assert!(out.contains("connection: 421 4.3.5"), "{out}");
    assert!(out.contains("FORCE_TLS is set but DENY_TLS"), "{out}");

    let out = run("10.1.2.3");
    assert!(out.contains("refused by tcpserver (deny rule)"), "{out}");
}

#[test]
fn submission_and_smtps_with_auth_and_json() {
    let h = home("587", true, ":allow\n");
    let cp = common::fake_checkpassword();
    let cp = cp.to_str().unwrap();
    let out = explain(
        &h.0,
        &[("FORCE_TLS", "1"), ("REQUIRE_AUTH", "1")],
        &[cp, "/bin/true"],
    );
    assert!(
        out.contains(
            "AUTH: before TLS: not offered; AUTH gets 530 5.7.0 Must issue a STARTTLS command first"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "MAIL: before TLS: refused without AUTH: 530 5.7.0 Must issue a STARTTLS command first"
        ),
        "{out}"
    );
    assert!(
        out.contains("AUTH: after STARTTLS: offered: PLAIN LOGIN\n"),
        "{out}"
    );
    assert!(out.contains("MAIL: after STARTTLS: refused without AUTH: 530 5.7.0 Authentication required\n    decided by: FORCE_TLS=1 [jms1], REQUIRE_AUTH=1 [jms1]"), "{out}");
    assert!(out.contains("    250 AUTH PLAIN LOGIN\n"), "{out}");

    let out = explain(
        &h.0,
        &[("SMTPS", "1"), ("SMTPAUTH", "+cram")],
        &["--format=json", "mx.example.net", cp, "/bin/true"],
    );
    assert!(out.starts_with('{') && out.ends_with("}\n"), "{out}");
    assert!(
        out.contains("\"2 EHLO (encrypted link)\":[\"250-mx.test\""),
        "{out}"
    );
    assert!(
        out.contains("\"answer\":\"offered: PLAIN LOGIN CRAM-MD5\""),
        "{out}"
    );
    assert!(out.contains("\"SMTPAUTH=+cram [sagredo]\""), "{out}");
    need("python3");
    let o = Command::new("python3")
        .args(["-c", "import json,sys; json.load(sys.stdin)"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(out.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(o.success(), "not valid JSON: {out}");
}

#[test]
fn no_certificate_and_bad_options() {
    let h = home("nocert", false, ":allow\n");
    let out = explain(&h.0, &[], &[]);
    assert!(
        out.contains("STARTTLS: not offered: no usable certificate"),
        "{out}"
    );
    let o = Command::new(common::bin())
        .args(["--explain", "--rules", "x.cdb"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--rules needs --ip"), "{}", text(&o));
}

/// `--via`: the client as seen through a load balancer that sends a PROXY
/// header, with the real client's rule from PROXY_RULES.
#[test]
fn through_the_balancer() {
    let dir = std::env::temp_dir().join(format!("qsmtpd-explain-via-{}", std::process::id()));
    let rules = format!(
        "10.0.0.5:allow,PROXY_PROTOCOL=\"1\",PROXY_RULES=\"{}/rules.cdb\",RELAYCLIENT=\"\"\n\
         10.0.0.6:allow\n\
         192.0.2.7:allow,DENY_TLS=\"1\"\n198.51.100.66:deny\n:allow\n",
        dir.display()
    );
    let h = home("via", true, &rules);
    assert_eq!(h.0, dir);
    let cdb = h.0.join("rules.cdb");
    let cdb = cdb.to_str().unwrap();
    let via = |ip: &str, balancer: &str| {
        explain(&h.0, &[], &["--rules", cdb, "--ip", ip, "--via", balancer])
    };
    let out = via("192.0.2.7", "10.0.0.5");
    assert!(out.contains("client: 192.0.2.7 via 10.0.0.5"), "{out}");
    assert!(
        out.contains("PROXY: read; the real client 192.0.2.7 gets rule \"192.0.2.7\": allow, sets DENY_TLS=\"1\"; the balancer's rule is undone"),
        "{out}"
    );
    assert!(
        out.contains("STARTTLS: not offered to this client"),
        "{out}"
    );
    // The balancer's RELAYCLIENT is undone.
    assert!(
        out.contains("relaying: only domains in control/rcpthosts"),
        "{out}"
    );
    let out = via("198.51.100.66", "10.0.0.5");
    assert!(out.contains("denied by PROXY_RULES"), "{out}");
    let out = via("192.0.2.7", "10.0.0.6");
    assert!(out.contains("PROXY: not read"), "{out}");
    assert!(
        out.contains("client: 192.0.2.7 via 10.0.0.6: seen as 10.0.0.6"),
        "{out}"
    );
}
