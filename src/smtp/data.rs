//! The DATA scanner: wire bytes after `354` → the bytes qmail-queue stores.
//!
//! Only `<CR><LF>.<CR><LF>` ends the message. CRLF is stored as LF, a
//! leading dot is removed (RFC 5321 §4.5.2), and a bare LF or a bare CR is
//! an error: the session answers 451 and closes, so no byte after it can
//! ever run as a command (SMTP smuggling). Resumable across any split of
//! the input, O(1) state, bulk copies between line ends.

use memchr::memchr2;

/// qmail's MAXHOPS: this many `Received:`/`Delivered-To:` lines is a loop.
pub const MAX_HOPS: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    BareLf,
    BareCr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    NeedMore,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// Inside a line.
    InLine,
    /// A CR inside a line (or ending an empty line), LF expected.
    Cr,
    /// A `.` at the start of a line.
    Dot,
    /// `.` then CR at the start of a line: LF ends the message.
    DotCr,
}

const RECEIVED: &[u8] = b"received:";
const DELIVERED_TO: &[u8] = b"delivered-to:";

pub struct DataScanner {
    state: State,
    limit: u64,
    bytes: u64,
    hops: u32,
    in_header: bool,
    /// Bytes of the current header line seen so far (capped).
    line_pos: usize,
    /// The current header line may still be `received:` / `delivered-to:`.
    maybe_received: bool,
    maybe_delivered: bool,
}

impl DataScanner {
    pub fn new(databytes: u64) -> DataScanner {
        DataScanner {
            state: State::LineStart,
            limit: databytes,
            bytes: 0,
            hops: 0,
            in_header: true,
            line_pos: 0,
            maybe_received: true,
            maybe_delivered: true,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn too_big(&self) -> bool {
        self.limit > 0 && self.bytes > self.limit
    }

    pub fn hops(&self) -> u32 {
        self.hops
    }

    pub fn discarding(&self) -> bool {
        self.too_big() || self.hops >= MAX_HOPS
    }

    /// Store `data` (no line ends in it except a final LF, handled by the
    /// caller through `end_line`).
    fn emit(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if self.in_header {
            self.header_bytes(data);
        }
        self.bytes += data.len() as u64;
        if !self.discarding() {
            out.extend_from_slice(data);
        }
    }

    fn header_bytes(&mut self, data: &[u8]) {
        for &b in data {
            if !(self.maybe_received || self.maybe_delivered) {
                break;
            }
            let c = b.to_ascii_lowercase();
            let p = self.line_pos;
            if self.maybe_received && RECEIVED.get(p) != Some(&c) {
                self.maybe_received = false;
            }
            if self.maybe_delivered && DELIVERED_TO.get(p) != Some(&c) {
                self.maybe_delivered = false;
            }
            self.line_pos += 1;
            if (self.maybe_received && self.line_pos == RECEIVED.len())
                || (self.maybe_delivered && self.line_pos == DELIVERED_TO.len())
            {
                self.hops += 1;
                self.maybe_received = false;
                self.maybe_delivered = false;
            }
        }
    }

    /// A line ended (CRLF seen): store its LF.
    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.in_header && self.line_pos == 0 {
            // An empty line ends the header.
            self.in_header = false;
        }
        self.line_pos = 0;
        self.maybe_received = true;
        self.maybe_delivered = true;
        self.bytes += 1;
        if !self.discarding() {
            out.push(b'\n');
        }
        self.state = State::LineStart;
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, Result<Scan, DataError>) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::InLine => {
                    // Copy up to the next CR or LF in one go.
                    let rest = &input[i..];
                    match memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.emit(rest, out);
                            return (input.len(), Ok(Scan::NeedMore));
                        }
                        Some(n) => {
                            self.emit(&rest[..n], out);
                            i += n + 1;
                            if rest[n] == b'\n' {
                                return (i, Err(DataError::BareLf));
                            }
                            self.state = State::Cr;
                        }
                    }
                }
                State::LineStart => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'.' => self.state = State::Dot,
                        b'\r' => self.state = State::Cr,
                        b'\n' => return (i, Err(DataError::BareLf)),
                        _ => {
                            // An ordinary line: InLine copies it from this
                            // byte, in one piece with the rest of the line.
                            i -= 1;
                            self.state = State::InLine;
                        }
                    }
                }
                State::Cr => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        return (i, Err(DataError::BareCr));
                    }
                    self.end_line(out);
                }
                State::Dot => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.state = State::DotCr,
                        b'\n' => return (i, Err(DataError::BareLf)),
                        _ => {
                            // The leading dot is dropped; from this byte
                            // on, the line is copied as it is.
                            i -= 1;
                            self.state = State::InLine;
                        }
                    }
                }
                State::DotCr => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        return (i, Err(DataError::BareCr));
                    }
                    self.state = State::LineStart;
                    return (i, Ok(Scan::End));
                }
            }
        }
        (i, Ok(Scan::NeedMore))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = (Vec<u8>, usize, Result<Scan, DataError>, u32, bool);

    /// Output only matters for a message that will be queued: after an
    /// error or once discarding, the edge throws it away.
    fn normalize(mut o: Outcome) -> Outcome {
        if o.2.is_err() || o.4 || o.3 >= MAX_HOPS {
            o.0.clear();
        }
        if o.2.is_err() {
            // The session closes the connection: only where it stopped counts.
            (o.3, o.4) = (0, false);
        }
        o
    }

    fn whole(input: &[u8], limit: u64) -> Outcome {
        let mut s = DataScanner::new(limit);
        let mut out = Vec::new();
        let (n, r) = s.feed(input, &mut out);
        (out, n, r, s.hops(), s.too_big())
    }

    /// Feed in the given pieces, stopping at End or an error.
    fn pieces(parts: &[&[u8]], limit: u64) -> Outcome {
        let mut s = DataScanner::new(limit);
        let mut out = Vec::new();
        let mut total = 0;
        let mut result = Ok(Scan::NeedMore);
        for p in parts {
            let (n, r) = s.feed(p, &mut out);
            total += n;
            result = r;
            if r != Ok(Scan::NeedMore) {
                break;
            }
            assert_eq!(n, p.len());
        }
        (out, total, result, s.hops(), s.too_big())
    }

    /// Obviously correct, byte at a time.
    fn reference(input: &[u8], limit: u64) -> Outcome {
        let mut out = Vec::new();
        let mut line: Vec<u8> = Vec::new();
        let mut i = 0;
        let mut hops = 0;
        let mut header = true;
        let mut bytes = 0u64;
        let mut stored = Vec::new();
        let result = loop {
            let Some(&b) = input.get(i) else {
                break Ok(Scan::NeedMore);
            };
            i += 1;
            if b == b'\n' {
                if line.last() != Some(&b'\r') {
                    break Err(DataError::BareLf);
                }
                line.pop();
                if line == b"." {
                    break Ok(Scan::End);
                }
                let content = if line.first() == Some(&b'.') {
                    &line[1..]
                } else {
                    &line[..]
                };
                if header {
                    let lower = content.to_ascii_lowercase();
                    if lower.starts_with(b"received:") || lower.starts_with(b"delivered-to:") {
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
                if line.last() == Some(&b'\r') {
                    break Err(DataError::BareCr);
                }
                line.push(b);
            }
        };
        // Partial line content already "stored" by the streaming scanner.
        if result == Ok(Scan::NeedMore) && !line.is_empty() {
            let mut l = &line[..];
            if l.last() == Some(&b'\r') {
                l = &l[..l.len() - 1];
            }
            let content = if l.first() == Some(&b'.') { &l[1..] } else { l };
            stored.extend_from_slice(content);
        }
        for &b in &stored {
            bytes += 1;
            out.push(b);
        }
        (out, i, result, hops, limit > 0 && bytes > limit)
    }

    #[test]
    fn table() {
        type Case<'a> = (&'a [u8], &'a [u8], Result<Scan, DataError>);
        let cases: &[Case] = &[
            (b".\r\n", b"", Ok(Scan::End)),
            (b".\r\nQUIT\r\n", b"", Ok(Scan::End)),
            (b"a\r\n.\r\n", b"a\n", Ok(Scan::End)),
            (b"..a\r\n.b\r\n..\r\n.\r\n", b".a\nb\n.\n", Ok(Scan::End)),
            (b"a\r\n\r\nb\r\n", b"a\n\nb\n", Ok(Scan::NeedMore)),
            (b"a\nb", b"a", Err(DataError::BareLf)),
            (b"\n", b"", Err(DataError::BareLf)),
            (b"a\r\n.\n", b"a\n", Err(DataError::BareLf)),
            (b"a\rb\r\n", b"a", Err(DataError::BareCr)),
            (b"a\r\n.\rX", b"a\n", Err(DataError::BareCr)),
            (b"a\r\r\n", b"a", Err(DataError::BareCr)),
            (b"x\r\n.\r\r\n", b"x\n", Err(DataError::BareCr)),
        ];
        for (input, out, result) in cases {
            let got = whole(input, 0);
            assert_eq!(
                (&got.0[..], got.2),
                (*out, *result),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let (_, n, _, _, _) = whole(b"a\r\n.\r\nQUIT\r\n", 0);
        assert_eq!(n, 6, "bytes after the terminator are left alone");
    }

    #[test]
    fn databytes_limit() {
        // "123456789\n" is 10 stored bytes.
        let ok = whole(b"123456789\r\n.\r\n", 10);
        assert!(!ok.4);
        assert_eq!(ok.0, b"123456789\n");
        let big = whole(b"1234567890\r\n.\r\n", 10);
        assert!(big.4);
        assert_eq!(big.2, Ok(Scan::End));
        assert!(big.0.len() <= 10, "nothing past the limit is passed on");
    }

    #[test]
    fn hops() {
        let msg = |n: usize, extra: &str| {
            let mut m = Vec::new();
            for i in 0..n {
                m.extend_from_slice(if i % 2 == 0 {
                    b"RECEIVED: x\r\n"
                } else {
                    b"Delivered-To: y\r\n"
                });
            }
            m.extend_from_slice(extra.as_bytes());
            m.extend_from_slice(b".\r\n");
            m
        };
        assert_eq!(whole(&msg(99, ""), 0).3, 99);
        assert_eq!(whole(&msg(100, ""), 0).3, 100);
        assert_eq!(whole(&msg(3, "\r\nReceived: in body\r\n"), 0).3, 3);
        assert_eq!(whole(b"Receive: x\r\nReceived x\r\n.\r\n", 0).3, 0);
        assert_eq!(
            whole(b".Received: x\r\n.\r\n", 0).3,
            1,
            "counted after unstuffing"
        );
    }

    fn check_all_splits(input: &[u8], limit: u64) {
        let want = normalize(whole(input, limit));
        let text = String::from_utf8_lossy(input);
        assert_eq!(
            want,
            normalize(reference(input, limit)),
            "reference on {text:?}"
        );
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                normalize(pieces(&[a, b], limit)),
                want,
                "split {i} of {text:?}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(normalize(pieces(&bytes, limit)), want);
    }

    #[test]
    fn every_split_matches() {
        for input in [
            &b"Received: a\r\ndelivered-to: b\r\n\r\n..x\r\n.y\r\n\r\n.\r\nMORE"[..],
            b"a\r\n.\r\rb",
            b"ab\r\ncd\nef",
            b"..\r\n...\r\n.\r\n",
        ] {
            check_all_splits(input, 0);
            check_all_splits(input, 7);
        }
    }

    #[test]
    fn random_against_reference() {
        let alphabet = b".\r\n\r\naR:ed";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            let mut input = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                input.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            check_all_splits(&input, (x >> 32) % 12);
        }
    }
}
