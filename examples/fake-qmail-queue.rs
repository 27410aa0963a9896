//! A stand-in for qmail-queue that speaks its real protocol, for tests, the
//! demo and benchmarks: the message on fd 0 (read to end of file), then the
//! envelope on fd 1 (`F<sender>\0`, `T<recipient>\0`…, `\0`), and an exit
//! code from qmail-queue(8)'s table.
//!
//! A message is stored only when it is complete and the exit code is 0:
//! written to `$FAKEQ_DIR/tmp/`, then renamed into `$FAKEQ_DIR/new/` as
//! `<time>.<pid>.msg` and `<time>.<pid>.env` (the `.env` last, so a reader
//! that sees it also sees the message). Without `FAKEQ_DIR` nothing is
//! stored (a discarding queue, for benchmarks).
//!
//! Behaviour is chosen by the environment (set per client with tcprules):
//! - `FAKEQ_EXIT=n`: read everything, store nothing, exit `n`.
//! - `FAKEQ_MODE=early`: exit 71 at once, reading nothing.
//! - `FAKEQ_MODE=signal`: read everything, then die by SIGKILL.
//! - `FAKEQ_MODE=hang`: read everything, then sleep until killed.
//!
//! A malformed envelope exits 91 ("envelope format error"), as qmail-queue.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let mode = std::env::var("FAKEQ_MODE").unwrap_or_default();
    if mode == "early" {
        std::process::exit(71);
    }
    let mut message = Vec::new();
    if io::stdin().lock().read_to_end(&mut message).is_err() {
        std::process::exit(54);
    }
    // SAFETY: fd 1 is qmail-queue's envelope pipe by protocol; this File is
    // its only owner in this process (stdout is never used here).
    let mut envelope_fd = unsafe { File::from_raw_fd(1) };
    let mut envelope = Vec::new();
    if envelope_fd.read_to_end(&mut envelope).is_err() {
        std::process::exit(54);
    }
    if !envelope_ok(&envelope) {
        std::process::exit(91);
    }
    match mode.as_str() {
        "signal" => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        _ => {}
    }
    if let Some(code) = std::env::var("FAKEQ_EXIT")
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
        .filter(|&c| c != 0)
    {
        std::process::exit(code);
    }
    if let Some(dir) = std::env::var_os("FAKEQ_DIR") {
        if store(Path::new(&dir), &message, &envelope).is_err() {
            std::process::exit(53);
        }
    }
}

/// `F…\0`, at least one `T…\0`, then the terminating `\0`, nothing after.
fn envelope_ok(env: &[u8]) -> bool {
    let Some(body) = env.strip_suffix(b"\0\0") else {
        return false;
    };
    let mut fields = body.split(|&b| b == 0);
    let sender_ok = fields.next().is_some_and(|f| f.first() == Some(&b'F'));
    let mut rcpts = 0;
    for f in fields {
        if f.first() != Some(&b'T') {
            return false;
        }
        rcpts += 1;
    }
    sender_ok && rcpts > 0
}

fn store(dir: &Path, message: &[u8], envelope: &[u8]) -> io::Result<()> {
    let (tmp, new) = (dir.join("tmp"), dir.join("new"));
    fs::create_dir_all(&tmp)?;
    fs::create_dir_all(&new)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "{}.{:09}.{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    for (ext, data) in [("msg", message), ("env", envelope)] {
        let file = format!("{name}.{ext}");
        let mut f = File::create(tmp.join(&file))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(tmp.join(&file), new.join(&file))?;
    }
    Ok(())
}
