//! The DATA end-of-message scanner (`smtp::data::DataScanner`) against an
//! obviously correct reference, under many splits of the same input.
//!
//! Input layout: `[limit, n, c_1 .. c_k, message...]` where
//! - `limit` picks `databytes`: `limit % 4 == 1` → `limit >> 2` (0..=63,
//!   0 meaning no limit), `== 2` → `(limit >> 2) * 16`, otherwise 0;
//! - `k = n % 17` chunk lengths follow (`c == 0` means "the rest"), used
//!   cyclically to cut the message into the pieces fed one after another;
//! - the rest is the wire bytes after `354`, starting at a line start.
//!
//! Besides those pieces the message is also fed whole and one byte at a
//! time. Properties (the same contract as data.rs's own unit tests,
//! `every_split_matches` / `random_against_reference`):
//! - never panics; `Ok(NeedMore)` consumes the whole piece;
//! - the result (`End`, `BareLf`, `BareCr` or `NeedMore`) and the number of
//!   bytes consumed equal the reference's: the message ends right after the
//!   first `CRLF . CRLF` (a leading `. CRLF` too) and never earlier; a LF not
//!   after CR, or a CR not before LF, is an error at that byte;
//! - unless the result is an error, `hops()` and `too_big()` equal the
//!   reference's, and if not discarding (too big or `MAX_HOPS`) the output is
//!   exactly the dot-unstuffed, CRLF → LF message;
//! - whatever happens, the output is a prefix of the reference output and
//!   never longer than a non-zero `databytes`;
//! - all of this is identical for every split.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qmail_smtpd::smtp::data::{DataError, DataScanner, MAX_HOPS, Scan};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    out: Vec<u8>,
    consumed: usize,
    result: Result<Scan, DataError>,
    hops: u32,
    too_big: bool,
}

/// Byte at a time, line by line, nothing clever.
struct Reference {
    /// Everything stored: complete lines plus the content so far of the line
    /// the input stopped in (what a streaming scanner has passed on).
    stored: Vec<u8>,
    consumed: usize,
    result: Result<Scan, DataError>,
    /// Received:/Delivered-To: header lines, counted as soon as their
    /// prefix is complete (the scanner counts while streaming).
    hops: u32,
}

fn unstuff(line: &[u8]) -> &[u8] {
    line.strip_prefix(b".").unwrap_or(line)
}

fn is_hop(content: &[u8]) -> bool {
    let starts = |p: &[u8]| content.len() >= p.len() && content[..p.len()].eq_ignore_ascii_case(p);
    starts(b"received:") || starts(b"delivered-to:")
}

fn reference(input: &[u8]) -> Reference {
    let mut stored = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut header = true;
    let mut hops = 0;
    let mut i = 0;
    let result = loop {
        let Some(&b) = input.get(i) else {
            break Ok(Scan::NeedMore);
        };
        i += 1;
        if line.last() == Some(&b'\r') && b != b'\n' {
            break Err(DataError::BareCr);
        }
        if b == b'\n' {
            if line.last() != Some(&b'\r') {
                break Err(DataError::BareLf);
            }
            line.pop();
            if line == b"." {
                break Ok(Scan::End);
            }
            let content = unstuff(&line);
            if header {
                if is_hop(content) {
                    hops += 1;
                }
                if content.is_empty() {
                    header = false;
                }
            }
            stored.extend_from_slice(content);
            stored.push(b'\n');
            line.clear();
        } else {
            line.push(b);
        }
    };
    if result != Ok(Scan::End) {
        // The unfinished line: its content without the leading dot and
        // without a CR still waiting for its LF.
        let l = line.strip_suffix(b"\r").unwrap_or(&line);
        let content = unstuff(l);
        if header && is_hop(content) {
            hops += 1;
        }
        stored.extend_from_slice(content);
    }
    Reference {
        stored,
        consumed: i,
        result,
        hops,
    }
}

/// Feed `pieces` in order, stopping at `End` or an error.
fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>, limit: u64) -> Outcome {
    let mut s = DataScanner::new(limit);
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut result = Ok(Scan::NeedMore);
    for p in pieces {
        let (n, r) = s.feed(p, &mut out);
        assert!(n <= p.len(), "consumed {n} of {} bytes", p.len());
        consumed += n;
        result = r;
        if r != Ok(Scan::NeedMore) {
            assert!(n > 0, "{r:?} without consuming a byte");
            break;
        }
        assert_eq!(n, p.len(), "NeedMore but bytes left over");
    }
    if limit > 0 {
        assert!(out.len() as u64 <= limit, "output past databytes");
    }
    Outcome {
        out,
        consumed,
        result,
        hops: s.hops(),
        too_big: s.too_big(),
    }
}

fn check(got: &Outcome, want: &Reference, limit: u64, what: &str) {
    assert_eq!(
        (got.result, got.consumed),
        (want.result, want.consumed),
        "{what}: result or bytes consumed differ from the reference"
    );
    assert!(
        want.stored.starts_with(&got.out),
        "{what}: output is not a prefix of the unstuffed message"
    );
    if got.result.is_err() {
        // The session answers 451 and closes: nothing else counts.
        return;
    }
    let too_big = limit > 0 && want.stored.len() as u64 > limit;
    assert_eq!(got.hops, want.hops, "{what}: hops");
    assert_eq!(got.too_big, too_big, "{what}: too_big");
    if !too_big && want.hops < MAX_HOPS {
        assert_eq!(got.out, want.stored, "{what}: output");
    }
}

/// What must not depend on the split (data.rs's `normalize`): output only
/// for a message that would be queued; after an error only where it stopped.
fn normalize(mut o: Outcome) -> Outcome {
    if o.result.is_err() || o.too_big || o.hops >= MAX_HOPS {
        o.out.clear();
    }
    if o.result.is_err() {
        (o.hops, o.too_big) = (0, false);
    }
    o
}

fuzz_target!(|input: &[u8]| {
    let [sel, n, rest @ ..] = input else {
        return;
    };
    let k = usize::from(n % 17).min(rest.len());
    let (lens, msg) = rest.split_at(k);
    let limit = match sel % 4 {
        1 => u64::from(sel >> 2),
        2 => u64::from(sel >> 2) * 16,
        _ => 0,
    };

    let want = reference(msg);

    let whole = run(std::iter::once(msg), limit);
    check(&whole, &want, limit, "whole");
    let whole = normalize(whole);

    let bytes = run(msg.chunks(1), limit);
    check(&bytes, &want, limit, "byte at a time");
    assert_eq!(normalize(bytes), whole, "byte at a time differs from whole");

    if !lens.is_empty() {
        let mut pieces = Vec::new();
        let mut rest = msg;
        for &c in lens.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let len = if c == 0 {
                rest.len()
            } else {
                usize::from(c).min(rest.len())
            };
            let (a, b) = rest.split_at(len);
            pieces.push(a);
            rest = b;
        }
        let split = run(pieces.iter().copied(), limit);
        check(&split, &want, limit, "chosen split");
        assert_eq!(normalize(split), whole, "chosen split differs from whole");
    }

    // Every two-piece split of short inputs, as data.rs's unit test does.
    if msg.len() <= 64 {
        for i in 0..=msg.len() {
            let (a, b) = msg.split_at(i);
            let two = run([a, b].into_iter(), limit);
            check(&two, &want, limit, "two pieces");
            assert_eq!(normalize(two), whole, "split at {i} differs from whole");
        }
    }
});
