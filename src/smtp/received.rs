//! qmail's Received header (received.c), byte for byte, with the RFC 3848
//! protocol word and an optional TLS note as the AUTH/TLS patches add.
//!
//! `Received: from <host> (HELO <helo>) (<info>@<ip>)\n  by <local> with <proto>; <date>\n`

/// The values the header is made of; the caller supplies the defaults
/// ("unknown") as qmail-smtpd does.
pub struct ReceivedInfo<'a> {
    pub remote_host: &'a [u8],
    pub helo: Option<&'a [u8]>,
    pub remote_info: Option<&'a [u8]>,
    pub remote_ip: &'a [u8],
    pub local: &'a [u8],
    pub protocol: &'a str,
    pub tls: Option<&'a str>,
    /// The address of a client certificate that granted relaying: a
    /// `(cert <email>)` continuation line, as the qmail-tls patch adds.
    pub cert: Option<&'a [u8]>,
}

/// qmail's `safeput`: anything outside a small safe set becomes `?`, so
/// client-chosen text cannot break the header.
fn safeput(out: &mut Vec<u8>, s: &[u8]) {
    out.extend(s.iter().map(|&c| {
        if c.is_ascii_alphanumeric() || b".@%+/=:-".contains(&c) {
            c
        } else {
            b'?'
        }
    }));
}

/// The `with` word: RFC 3848's `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`,
/// `ESMTPSA`; after `MAIL … SMTPUTF8` sagredo's `UTF8SMTP`, `UTF8SMTPS`,
/// `UTF8SMTPA`, `UTF8SMTPSA` (RFC 6531 registers `UTF8SMTP…`, and
/// sagredo's qmail-remote relays a message as SMTPUTF8 when it sees one).
pub fn protocol(esmtp: bool, secure: bool, authenticated: bool, smtputf8: bool) -> &'static str {
    match (smtputf8, esmtp, secure, authenticated) {
        (true, _, false, false) => "UTF8SMTP",
        (true, _, true, false) => "UTF8SMTPS",
        (true, _, false, true) => "UTF8SMTPA",
        (true, _, true, true) => "UTF8SMTPSA",
        (false, false, _, _) => "SMTP",
        (false, true, false, false) => "ESMTP",
        (false, true, true, false) => "ESMTPS",
        (false, true, false, true) => "ESMTPA",
        (false, true, true, true) => "ESMTPSA",
    }
}

pub fn received(info: &ReceivedInfo<'_>, unix_time: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"Received: from ");
    safeput(out, info.remote_host);
    // qmail's fakehelo: the HELO name only when it says something new.
    if let Some(helo) = info
        .helo
        .filter(|h| !h.eq_ignore_ascii_case(info.remote_host))
    {
        out.extend_from_slice(b" (HELO ");
        safeput(out, helo);
        out.push(b')');
    }
    out.extend_from_slice(b" (");
    if let Some(ri) = info.remote_info {
        safeput(out, ri);
        out.push(b'@');
    }
    safeput(out, info.remote_ip);
    out.extend_from_slice(b")\n  by ");
    safeput(out, info.local);
    out.extend_from_slice(b" with ");
    out.extend_from_slice(info.protocol.as_bytes());
    if let Some(tls) = info.tls {
        out.extend_from_slice(b" (");
        out.extend_from_slice(tls.as_bytes());
        out.push(b')');
    }
    if let Some(email) = info.cert {
        out.extend_from_slice(b"\n  (cert ");
        safeput(out, email);
        out.push(b')');
    }
    out.extend_from_slice(b"; ");
    date822(unix_time, out);
    out.push(b'\n');
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// qmail's `date822fmt`, always UTC: `22 Nov 2026 11:54:35 -0000`.
pub fn date822(unix_time: u64, out: &mut Vec<u8>) {
    let days = unix_time / 86_400;
    let secs = unix_time % 86_400;
    let (y, m, d) = civil_from_days(days);
    let s = format!(
        "{d} {} {y} {:02}:{:02}:{:02} -0000",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    out.extend_from_slice(s.as_bytes());
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31); Howard Hinnant's
/// algorithm, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(t: u64) -> String {
        let mut v = Vec::new();
        date822(t, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1 Jan 1970 00:00:00 -0000");
        assert_eq!(date(951_782_400), "29 Feb 2000 00:00:00 -0000");
        assert_eq!(date(1_795_348_475), "22 Nov 2026 11:54:35 -0000");
        assert_eq!(date(4_107_542_399), "28 Feb 2100 23:59:59 -0000");
        assert_eq!(date(4_107_542_400), "1 Mar 2100 00:00:00 -0000");
        assert_eq!(date(2_147_483_648), "19 Jan 2038 03:14:08 -0000");
    }

    fn header(info: &ReceivedInfo<'_>) -> String {
        let mut v = Vec::new();
        received(info, 1_795_348_475, &mut v);
        String::from_utf8(v).unwrap()
    }

    const BASE: ReceivedInfo<'static> = ReceivedInfo {
        remote_host: b"client.example.net",
        helo: Some(b"c.example.net"),
        remote_info: None,
        remote_ip: b"192.0.2.7",
        local: b"mx.example.org",
        protocol: "ESMTP",
        tls: None,
        cert: None,
    };

    #[test]
    fn qmail_shape() {
        assert_eq!(
            header(&BASE),
            "Received: from client.example.net (HELO c.example.net) (192.0.2.7)\n  by mx.example.org with ESMTP; 22 Nov 2026 11:54:35 -0000\n"
        );
        let same = ReceivedInfo {
            helo: Some(b"CLIENT.example.NET"),
            remote_info: Some(b"user"),
            protocol: "SMTP",
            ..BASE
        };
        assert_eq!(
            header(&same),
            "Received: from client.example.net (user@192.0.2.7)\n  by mx.example.org with SMTP; 22 Nov 2026 11:54:35 -0000\n"
        );
        let none = ReceivedInfo { helo: None, ..BASE };
        assert!(header(&none).starts_with("Received: from client.example.net (192.0.2.7)\n"));
        let tls = ReceivedInfo {
            protocol: "ESMTPS",
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            ..BASE
        };
        assert!(header(&tls).contains(
            "  by mx.example.org with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384); 22 Nov"
        ));
        let cert = ReceivedInfo {
            cert: Some(b"relay@example.org (x)"),
            ..tls
        };
        assert!(header(&cert).contains(
            " with ESMTPS (TLSv1.3 TLS13_AES_256_GCM_SHA384)\n  (cert relay@example.org??x?); 22 Nov"
        ));
    }

    #[test]
    fn unsafe_bytes_become_question_marks() {
        let evil = ReceivedInfo {
            helo: Some(b"a b(c)\r\nX-Evil: \xff"),
            remote_info: Some(b"u;"),
            ..BASE
        };
        assert_eq!(
            header(&evil),
            "Received: from client.example.net (HELO a?b?c???X-Evil:??) (u?@192.0.2.7)\n  by mx.example.org with ESMTP; 22 Nov 2026 11:54:35 -0000\n"
        );
    }
}
