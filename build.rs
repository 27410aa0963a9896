//! Two link options for the qmail-smtpd binary, applied only where the
//! linker is known to take them; without them the binary is the same
//! program, only laid out less compactly.
//!
//! * `link-order.txt` (glibc build) or `link-order-musl.txt` (musl build)
//!   goes to lld's `--symbol-ordering-file`: the functions a usual session
//!   runs are placed together at the start of `.text`. The kernel maps a
//!   binary's text in 64 KiB windows around each page fault, so with those
//!   functions scattered over 4 MB of text a TLS session mapped 3.3 MiB of
//!   it. `tests/bench/link-order` makes the files; the Rust names in them
//!   carry hashes that differ between the two targets, hence two.
//! * RELR (`-z pack-relative-relocs`): the static PIE's 7,400 relative
//!   relocations as a bitmap, 1.7 KB instead of a 177 KB table that every
//!   process read at start. glibc's static start-up applies RELR since 2.36;
//!   an older glibc would ignore the bitmap and crash, so it is checked.
//!   musl applies it since 1.2.4; the musl rustup ships with Rust 1.90 and
//!   later is newer.
//!
//! rustc links `x86_64-unknown-linux-gnu` with its own lld (`rust-lld`)
//! since 1.90. For `x86_64-unknown-linux-musl` its linker is the C
//! compiler driver with GNU ld; there `-fuse-ld=lld` and `-B` pointing at
//! the same rust-lld (rustup's `gcc-ld/ld.lld` for the host) make it lld.
//! Where another linker may be in use (a configured linker, linker flags,
//! an older rustc, a rustc without rust-lld, another host or target),
//! neither option is given.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GNU: &str = "x86_64-unknown-linux-gnu";
const MUSL: &str = "x86_64-unknown-linux-musl";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-changed=link-order-musl.txt");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target = env::var("TARGET").unwrap_or_default();
    let Some(gcc_ld) = rust_lld_dir(&target) else {
        return;
    };
    let (order_file, relr) = if target == MUSL {
        // The C compiler driver runs gcc-ld/ld.lld, rustup's wrapper that
        // execs rust-lld.
        link_arg_direct("-fuse-ld=lld");
        link_arg_direct(&format!("-B{}", gcc_ld.display()));
        ("link-order-musl.txt", true)
    } else {
        ("link-order.txt", glibc_at_least(2, 36))
    };
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = Path::new(&manifest).join(order_file);
    if order.is_file() {
        // -Xlinker pairs rather than -Wl, which would split a path at commas.
        link_arg(&format!("--symbol-ordering-file={}", order.display()));
        // Names of functions that no longer exist are skipped quietly.
        link_arg("--no-warn-symbol-ordering");
    }
    if relr {
        link_arg("-z");
        link_arg("pack-relative-relocs");
    }
}

fn link_arg(arg: &str) {
    link_arg_direct("-Xlinker");
    link_arg_direct(arg);
}

fn link_arg_direct(arg: &str) {
    println!("cargo:rustc-link-arg-bin=qmail-smtpd={arg}");
}

/// Where the link will be (gnu) or can be made (musl) rust-lld's: the
/// directory of rustup's `gcc-ld/ld.lld` for the host.
fn rust_lld_dir(target: &str) -> Option<PathBuf> {
    if (target != GNU && target != MUSL) || env::var("HOST").ok()? != GNU {
        return None;
    }
    // A linker configured for the target (target.<triple>.linker).
    if env::var_os("RUSTC_LINKER").is_some() {
        return None;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.split('\x1f').any(|f| {
        ["linker", "link-self-contained", "fuse-ld"]
            .iter()
            .any(|k| f.contains(k))
    }) {
        return None;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let verbose = output(&rustc, &["-vV"])?;
    let release = verbose
        .lines()
        .find_map(|l| l.strip_prefix("release: "))
        .unwrap_or("");
    if version_below(release, 1, 90) {
        return None;
    }
    let sysroot = output(&rustc, &["--print", "sysroot"])?;
    let dir = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(GNU)
        .join("bin/gcc-ld");
    dir.join("ld.lld").exists().then_some(dir)
}

/// The static glibc linked in is the build machine's (no cross build gets
/// here): `getconf GNU_LIBC_VERSION` says "glibc 2.36".
fn glibc_at_least(major: u32, minor: u32) -> bool {
    output("getconf", &["GNU_LIBC_VERSION"])
        .and_then(|v| v.trim().strip_prefix("glibc ").map(str::to_string))
        .is_some_and(|v| !version_below(&v, major, minor))
}

/// Whether "MAJOR.MINOR[.PATCH][-suffix]" is below major.minor; a version
/// that cannot be read counts as below.
fn version_below(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) < (major, minor),
        _ => true,
    }
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}
