//! Pure: the few fields of an X.509 certificate or CRL we need, read from
//! DER without a parser crate: validity, issuer and subject (to pair chain
//! certificates), the e-mail addresses a client certificate names (subject
//! `emailAddress`, subjectAltName `rfc822Name`), and a CRL's nextUpdate.
//!
//! Every function takes bytes and returns `None` (or nothing) on anything
//! it does not understand; none panics on any input (fuzz target `x509`).
//! Signatures are never looked at here: the certificates a decision rests
//! on have been verified by webpki first.

/// A DER element: (tag, contents, rest).
pub fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, &b| (l << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The parts of a TBSCertificate we use, as raw DER contents.
struct Tbs<'a> {
    issuer: &'a [u8],
    validity: &'a [u8],
    subject: &'a [u8],
    /// The contents of `[3] EXPLICIT Extensions`, if present.
    extensions: Option<&'a [u8]>,
}

fn tbs(cert: &[u8]) -> Option<Tbs<'_>> {
    let (0x30, certificate, _) = der(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    let (tag, _, after) = der(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    let (_, _, rest) = der(rest)?; // serialNumber
    let (_, _, rest) = der(rest)?; // signature
    let (0x30, issuer, rest) = der(rest)? else {
        return None;
    };
    let (0x30, validity, rest) = der(rest)? else {
        return None;
    };
    let (0x30, subject, mut rest) = der(rest)? else {
        return None;
    };
    let (_, _, after) = der(rest)?; // subjectPublicKeyInfo
    rest = after;
    let mut extensions = None;
    while !rest.is_empty() {
        let (tag, contents, after) = der(rest)?;
        if tag == 0xa3 {
            let (0x30, exts, _) = der(contents)? else {
                return None;
            };
            extensions = Some(exts);
        }
        rest = after;
    }
    Some(Tbs {
        issuer,
        validity,
        subject,
        extensions,
    })
}

/// The issuer and subject names, as DER contents (compared bytewise to
/// find which certificate issued which).
pub fn issuer_subject(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    tbs(cert).map(|t| (t.issuer, t.subject))
}

/// A certificate's validity period as Unix times (RFC 5280 §4.1.2.5).
pub fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let validity = tbs(cert)?.validity;
    let (t1, nb, rest) = der(validity)?;
    let (t2, na, _) = der(rest)?;
    Some((time(t1, nb)?, time(t2, na)?))
}

/// DER of OID 1.2.840.113549.1.9.1 (PKCS #9 emailAddress).
const EMAIL_ADDRESS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
/// DER of OID 2.5.29.17 (subjectAltName).
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// DER of OID 2.5.4.3 (commonName).
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The subject's first commonName, as Postfix's `ccert_subject` gives it:
/// a PrintableString, UTF8String, IA5String or T61String of printable
/// ASCII (anything else is not passed on).
pub fn subject_cn(cert: &[u8]) -> Option<Vec<u8>> {
    let t = tbs(cert)?;
    let mut rdns = t.subject;
    while let Some((0x31, set, after)) = der(rdns) {
        let mut atvs = set;
        while let Some((0x30, atv, next)) = der(atvs) {
            if let Some((0x06, oid, value)) = der(atv) {
                if let Some((0x13 | 0x0c | 0x16 | 0x14, v, _)) = der(value) {
                    if oid == COMMON_NAME {
                        let printable = v.iter().all(|b| (0x20..0x7f).contains(b));
                        return (printable && !v.is_empty()).then(|| v.to_vec());
                    }
                }
            }
            atvs = next;
        }
        rdns = after;
    }
    None
}

/// The e-mail addresses a certificate names: each subject `emailAddress`
/// first (the qmail-tls patch reads the first of them), then each
/// subjectAltName `rfc822Name`. Only printable ASCII values are returned.
pub fn emails(cert: &[u8]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let Some(t) = tbs(cert) else {
        return found;
    };
    let ascii = |v: &[u8]| !v.is_empty() && v.iter().all(|b| (0x21..0x7f).contains(b));
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
    let mut rdns = t.subject;
    while let Some((0x31, set, after)) = der(rdns) {
        let mut atvs = set;
        while let Some((0x30, atv, next)) = der(atvs) {
            if let Some((0x06, oid, value)) = der(atv) {
                // IA5String, as RFC 5280 asks; UTF8String from lax CAs.
                if let Some((0x16 | 0x0c, v, _)) = der(value) {
                    if oid == EMAIL_ADDRESS && ascii(v) {
                        found.push(v.to_vec());
                    }
                }
            }
            atvs = next;
        }
        rdns = after;
    }
    let mut exts = t.extensions.unwrap_or_default();
    while let Some((0x30, ext, after)) = der(exts) {
        exts = after;
        let Some((0x06, oid, mut rest)) = der(ext) else {
            continue;
        };
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE
        if let Some((0x01, _, after)) = der(rest) {
            rest = after;
        }
        let Some((0x04, value, _)) = der(rest) else {
            continue;
        };
        let Some((0x30, mut names, _)) = der(value) else {
            continue;
        };
        // GeneralName: rfc822Name [1] IMPLICIT IA5String
        while let Some((tag, v, after)) = der(names) {
            if tag == 0x81 && ascii(v) {
                found.push(v.to_vec());
            }
            names = after;
        }
    }
    found
}

/// A CRL's nextUpdate as a Unix time, if it has one (RFC 5280 §5.1.2.5).
pub fn crl_next_update(crl: &[u8]) -> Option<i64> {
    let (0x30, list, _) = der(crl)? else {
        return None;
    };
    let (0x30, tbs, _) = der(list)? else {
        return None;
    };
    let mut rest = tbs;
    // version INTEGER, optional
    let (tag, _, after) = der(rest)?;
    if tag == 0x02 {
        rest = after;
    }
    let (_, _, rest) = der(rest)?; // signature
    let (_, _, rest) = der(rest)?; // issuer
    let (_, _, rest) = der(rest)?; // thisUpdate
    match der(rest)? {
        (t @ (0x17 | 0x18), s, _) => time(t, s),
        _ => None,
    }
}

/// The kind of key a PKCS #8 PrivateKeyInfo holds, from its algorithm
/// identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ec,
    Ed25519,
}

/// The algorithm of a PKCS #8 key (RFC 5208 §5), without decoding the key.
pub fn pkcs8_kind(key: &[u8]) -> Option<KeyKind> {
    let (0x30, info, _) = der(key)? else {
        return None;
    };
    let (0x02, _, rest) = der(info)? else {
        return None;
    };
    let (0x30, alg, _) = der(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der(alg)? else {
        return None;
    };
    match oid {
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01] => Some(KeyKind::Rsa),
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => Some(KeyKind::Ec),
        [0x2b, 0x65, 0x70] => Some(KeyKind::Ed25519),
        _ => None,
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
pub fn time(tag: u8, s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 14) => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2)?.parse::<i64>().ok();
    let (month, day, hour, min, sec) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(0x17, b"261122115435Z"), Some(1_795_348_475));
        assert_eq!(time(0x18, b"20261122115435Z"), Some(1_795_348_475));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x17, b"26112211543Z"), None);
        assert_eq!(time(0x17, b"2611221154+5Z"), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der(&[0x30, 0x01, 0xff, 0x00]),
            Some((0x30, &[0xff][..], &[0x00][..]))
        );
        assert_eq!(
            der(&[0x30, 0x81, 0x01, 0xff]),
            Some((0x30, &[0xff][..], &[][..]))
        );
        assert_eq!(der(&[0x30, 0x05, 0xff]), None);
        assert_eq!(der(&[0x30, 0x80]), None);
        assert_eq!(validity(&[0x30, 0x00]), None);
    }

    /// A DER element (lengths up to 255).
    fn el(tag: u8, contents: &[u8]) -> Vec<u8> {
        let n = u8::try_from(contents.len()).unwrap();
        let mut v = if n < 0x80 {
            vec![tag, n]
        } else {
            vec![tag, 0x81, n]
        };
        v.extend_from_slice(contents);
        v
    }

    fn cert(subject: &[u8], extensions: Option<&[u8]>) -> Vec<u8> {
        let time = el(0x17, b"260101000000Z");
        let mut tbs = el(0xa0, &el(0x02, &[2]));
        tbs.extend(el(0x02, &[1]));
        tbs.extend(el(0x30, &[]));
        tbs.extend(el(0x30, b"")); // issuer
        tbs.extend(el(0x30, &[time.clone(), time].concat()));
        tbs.extend(el(0x30, subject));
        tbs.extend(el(0x30, &[]));
        if let Some(e) = extensions {
            tbs.extend(el(0xa3, &el(0x30, e)));
        }
        el(
            0x30,
            &[el(0x30, &tbs), el(0x30, &[]), el(0x03, &[0])].concat(),
        )
    }

    fn mail_only() -> Vec<u8> {
        el(
            0x31,
            &el(
                0x30,
                &[el(0x06, EMAIL_ADDRESS), el(0x16, b"a@example.org")].concat(),
            ),
        )
    }

    #[test]
    fn emails_from_subject_and_subject_alt_name() {
        let atv = |oid: &[u8], tag: u8, v: &[u8]| {
            el(0x31, &el(0x30, &[el(0x06, oid), el(tag, v)].concat()))
        };
        let cn = atv(&[0x55, 0x04, 0x03], 0x0c, b"client");
        let mail = atv(EMAIL_ADDRESS, 0x16, b"Relay@Example.ORG");
        let san = el(
            0x30,
            &[
                el(0x06, SUBJECT_ALT_NAME),
                el(0x01, &[0xff]),
                el(
                    0x04,
                    &el(
                        0x30,
                        &[el(0x82, b"host.test"), el(0x81, b"alt@example.org")].concat(),
                    ),
                ),
            ]
            .concat(),
        );
        let c = cert(&[cn.clone(), mail].concat(), Some(&san));
        assert_eq!(
            emails(&c),
            vec![b"Relay@Example.ORG".to_vec(), b"alt@example.org".to_vec()]
        );
        assert_eq!(validity(&c), Some((1_767_225_600, 1_767_225_600)));
        assert_eq!(subject_cn(&c), Some(b"client".to_vec()));
        // No e-mail at all; a non-ASCII or empty value is not an address.
        assert!(emails(&cert(&cn, None)).is_empty());
        assert_eq!(subject_cn(&cert(&mail_only(), None)), None);
        let ctl = atv(&[0x55, 0x04, 0x03], 0x13, b"a\nb");
        assert_eq!(subject_cn(&cert(&ctl, None)), None);
        let odd = atv(EMAIL_ADDRESS, 0x16, b"a b@x");
        assert!(emails(&cert(&odd, None)).is_empty());
        let empty = atv(EMAIL_ADDRESS, 0x16, b"");
        assert!(emails(&cert(&empty, None)).is_empty());
        // Truncated input of every length: no panic, no address.
        for n in 0..c.len() {
            let _ = emails(&c[..n]);
            let _ = subject_cn(&c[..n]);
            let _ = issuer_subject(&c[..n]);
            let _ = crl_next_update(&c[..n]);
        }
    }

    #[test]
    fn pkcs8_kinds() {
        let key = |oid: &[u8]| {
            el(
                0x30,
                &[el(0x02, &[0]), el(0x30, &el(0x06, oid)), el(0x04, &[1, 2])].concat(),
            )
        };
        let rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        assert_eq!(pkcs8_kind(&key(&rsa)), Some(KeyKind::Rsa));
        let ec = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        assert_eq!(pkcs8_kind(&key(&ec)), Some(KeyKind::Ec));
        assert_eq!(
            pkcs8_kind(&key(&[0x2b, 0x65, 0x70])),
            Some(KeyKind::Ed25519)
        );
        assert_eq!(pkcs8_kind(&key(&[0x2b, 0x65, 0x71])), None);
        assert_eq!(pkcs8_kind(&[0x30, 0x00]), None);
    }

    #[test]
    fn crl_next_update_read() {
        let this = el(0x17, b"260101000000Z");
        let next = el(0x18, b"20260201000000Z");
        let tbs = [
            el(0x02, &[1]),
            el(0x30, &[]),
            el(0x30, &[]),
            this.clone(),
            next,
        ]
        .concat();
        let crl = el(
            0x30,
            &[el(0x30, &tbs), el(0x30, &[]), el(0x03, &[0])].concat(),
        );
        assert_eq!(crl_next_update(&crl), Some(1_769_904_000));
        let tbs = [el(0x30, &[]), el(0x30, &[]), this].concat();
        let crl = el(0x30, &el(0x30, &tbs));
        assert_eq!(crl_next_update(&crl), None);
    }
}
