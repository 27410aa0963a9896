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

#[allow(dead_code)]
fn openssl(dir: &Path, args: &[&str]) {
    need("openssl");
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
}
