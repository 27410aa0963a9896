//! A checkpassword stand-in that speaks the real interface
//! (cr.yp.to/checkpwd/interface.html), for tests and the demo:
//! `fake-checkpassword prog [args…]` reads `user\0password\0timestamp\0` from
//! fd 3 (at most 512 bytes; the timestamp and its 0 byte may be left out, as
//! DJB's checkpassword allows), and on success drops root privileges, as a
//! real checkpassword does, and execs `prog`. Exit 1: wrong credentials;
//! 2: misuse; 111: temporary failure.
//!
//! Users come from `FAKECP_USERS` (`alice:wonderland,bob:secret`). When the
//! timestamp is set and the secret is 32 hex digits, it is checked as a
//! CRAM-MD5 digest (HMAC-MD5 of the timestamp keyed with the password), as
//! vchkpw does.
//!
//! `FAKECP_MODE` makes it misbehave: `temp` exits 111, `hang` never exits,
//! `print` writes junk to stdout and stderr first, `crash` dies by SIGKILL,
//! `root` succeeds without dropping root. `FAKECP_RECORD=path` appends each
//! record it read (NULs shown as `|`), so tests can see exactly what came.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;

use hmac::{Hmac, Mac};

fn main() {
    let mode = std::env::var("FAKECP_MODE").unwrap_or_default();
    // SAFETY: fd 3 is the credentials pipe by the checkpassword interface;
    // this File is its only owner.
    let mut fd3 = unsafe { File::from_raw_fd(3) };
    let mut record = Vec::new();
    if (&mut fd3).take(513).read_to_end(&mut record).is_err() || record.len() > 512 {
        std::process::exit(2);
    }
    drop(fd3);
    if let Some(path) = std::env::var_os("FAKECP_RECORD") {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            let shown: Vec<u8> = record
                .iter()
                .map(|&b| if b == 0 { b'|' } else { b })
                .collect();
            let _ = f.write_all(&shown);
            let _ = f.write_all(b"\n");
        }
    }
    let mut fields: Vec<&[u8]> = record.split(|&b| b == 0).collect();
    // The timestamp may be missing altogether (`user\0password\0`), as
    // DJB's checkpassword allows: the qmail-authentication patch (sagredo's
    // qmail-smtpd) sends none for LOGIN and PLAIN.
    if fields.len() == 3 && fields[2].is_empty() {
        fields.insert(2, b"");
    }
    if fields.len() != 4 || !fields[3].is_empty() {
        std::process::exit(2);
    }
    let (user, secret, timestamp) = (fields[0], fields[1], fields[2]);
    match mode.as_str() {
        "temp" => std::process::exit(111),
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "crash" => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        "print" => {
            println!("250 2.0.0 injected by checkpassword");
            eprintln!("fake-checkpassword: chatter on stderr");
        }
        _ => {}
    }
    let users = std::env::var("FAKECP_USERS").unwrap_or_default();
    let ok = users
        .split(',')
        .filter_map(|e| e.split_once(':'))
        .any(|(u, p)| {
            u.as_bytes() == user
                && if !timestamp.is_empty() && secret.len() == 32 {
                    hex_hmac(p.as_bytes(), timestamp).as_bytes() == secret
                } else {
                    p.as_bytes() == secret
                }
        });
    if !ok {
        std::process::exit(1);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((prog, rest)) = args.split_first() else {
        std::process::exit(2);
    };
    if nix::unistd::getuid().is_root() && mode != "root" {
        // A real checkpassword becomes the user; "nobody" stands in.
        let nobody = nix::unistd::Uid::from_raw(65534);
        if nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).is_err()
            || nix::unistd::setuid(nobody).is_err()
        {
            std::process::exit(111);
        }
    }
    let e = std::process::Command::new(prog).args(rest).exec();
    eprintln!("fake-checkpassword: exec {prog}: {e}");
    std::process::exit(111);
}

fn hex_hmac(key: &[u8], msg: &[u8]) -> String {
    let mut m = Hmac::<md5::Md5>::new_from_slice(key).expect("any key length");
    m.update(msg);
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
