//! Pure: which `control/servercerts/<name>/` directory a client's SNI
//! name may open. Only a DNS host name gets one, lower-cased (SNI names
//! are matched ASCII case-insensitively); anything else (slashes, `..`,
//! NUL, empty labels, over 253 bytes) never reaches the file system.

/// Longest DNS name in text form (RFC 1035 §2.3.4, without the root dot).
pub const MAX_NAME: usize = 253;
/// Longest label.
pub const MAX_LABEL: usize = 63;

/// The directory name for SNI name `name`, or `None` if it is not a host
/// name: 1 to 253 bytes of dot-separated labels of 1 to 63 letters,
/// digits and hyphens, no label starting or ending with a hyphen.
pub fn dir_name(name: &[u8]) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    for label in name.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > MAX_LABEL
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
            || !label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
    }
    // Only ASCII alphanumerics, hyphens and dots are left.
    String::from_utf8(name.to_ascii_lowercase()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_only() {
        for (name, want) in [
            (&b"mail.example.org"[..], Some("mail.example.org")),
            (b"MAIL.Example.ORG", Some("mail.example.org")),
            (b"localhost", Some("localhost")),
            (b"xn--bcher-kva.example", Some("xn--bcher-kva.example")),
            (b"a-b.c1", Some("a-b.c1")),
            (b"", None),
            (b".", None),
            (b"..", None),
            (b"../etc", None),
            (b"a/b", None),
            (b"/etc/passwd", None),
            (b"a..b", None),
            (b".a", None),
            (b"a.", None),
            (b"a\0b", None),
            (b"a b", None),
            (b"a_b", None),
            (b"-a", None),
            (b"a-", None),
            (b"a\\b", None),
            (b"\xc3\xa9.example", None),
            (b"*.example", None),
        ] {
            assert_eq!(dir_name(name).as_deref(), want, "{name:?}");
        }
        let label = "a".repeat(63);
        assert!(dir_name(label.as_bytes()).is_some());
        assert!(dir_name("a".repeat(64).as_bytes()).is_none());
        let long = [label.as_str(); 4].join("."); // 255 bytes
        assert!(dir_name(long.as_bytes()).is_none());
        assert!(dir_name(&long.as_bytes()[2..]).is_some()); // 253
        assert!(dir_name(&long.as_bytes()[1..]).is_none()); // 254
    }
}
