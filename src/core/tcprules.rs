//! The rule tcpserver would pick from a tcprules CDB, and the environment
//! it would set (ucspi-tcp `rules.c`). Pure: the CDB is a look-up function.
//!
//! Look-up order: `info@ip`, `info@=host` (when a remote info is known),
//! the exact IP, `=host`, then shorter IP prefixes ending in `.` or, for
//! IPv6 as tcpserver6 reads its rules, `:` (`192.0.2.`, `192.0.`, `192.`;
//! `2001:db8::`, `2001:db8:`, `2001:`), then `=.suffix` of the host name and
//! `=`, and finally the empty default rule. The first key present wins.
//! A value is `D` for deny, or a list of `+NAME=value\0` settings for allow.

/// The rule that applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The key that matched (`""` is the default rule).
    pub key: String,
    pub allow: bool,
    /// Variables the rule sets, in order.
    pub env: Vec<(String, String)>,
}

/// Find the rule for `ip` (and `host`, `info` when known).
pub fn lookup(
    get: impl Fn(&[u8]) -> Option<Vec<u8>>,
    ip: &str,
    host: Option<&str>,
    info: Option<&str>,
) -> Option<Rule> {
    let mut keys: Vec<String> = Vec::new();
    if let Some(info) = info {
        keys.push(format!("{info}@{ip}"));
        if let Some(host) = host {
            keys.push(format!("{info}@={host}"));
        }
    }
    keys.push(ip.to_string());
    if let Some(host) = host {
        keys.push(format!("={host}"));
    }
    for (i, _) in ip
        .char_indices()
        .rev()
        .filter(|&(_, c)| c == '.' || c == ':')
    {
        keys.push(ip[..=i].to_string());
    }
    if let Some(host) = host {
        for (i, _) in host.char_indices().filter(|&(_, c)| c == '.') {
            keys.push(format!("={}", &host[i..]));
        }
        keys.push("=".into());
    }
    keys.push(String::new());
    keys.into_iter()
        .find_map(|k| get(k.as_bytes()).map(|v| parse(k, &v)))
}

/// The rule stored under `key` with the CDB value `value`.
pub fn parse(key: String, value: &[u8]) -> Rule {
    if value.first() == Some(&b'D') {
        return Rule {
            key,
            allow: false,
            env: Vec::new(),
        };
    }
    let env = value
        .split(|&b| b == 0)
        .filter_map(|item| item.strip_prefix(b"+"))
        .filter_map(|item| {
            let text = String::from_utf8_lossy(item);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Rule {
        key,
        allow: true,
        env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn db() -> HashMap<Vec<u8>, Vec<u8>> {
        [
            (&b"127.0.0.1"[..], &b"+RELAYCLIENT=\0+FOO=bar\0"[..]),
            (b"127.", b"+X=1\0"),
            (b"10.0.0.2", b"D\0"),
            (b"=mx.example", b"+H=1\0"),
            (b"=.example", b"+D=1\0"),
            (b"", b"+DEF=1\0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
    }

    #[test]
    fn tcpserver_order() {
        let db = db();
        let get = |k: &[u8]| db.get(k).cloned();
        let r = lookup(get, "127.0.0.1", None, None).unwrap();
        assert_eq!(r.key, "127.0.0.1");
        assert_eq!(
            r.env,
            [
                ("RELAYCLIENT".into(), String::new()),
                ("FOO".into(), "bar".into())
            ]
        );
        assert_eq!(lookup(get, "127.0.0.2", None, None).unwrap().key, "127.");
        assert!(!lookup(get, "10.0.0.2", None, None).unwrap().allow);
        let r = lookup(get, "192.0.2.1", Some("mx.example"), None).unwrap();
        assert_eq!(r.key, "=mx.example");
        let r = lookup(get, "192.0.2.1", Some("a.b.example"), None).unwrap();
        assert_eq!(r.key, "=.example");
        // An exact IP beats a host name; a host name beats an IP prefix.
        assert_eq!(
            lookup(get, "127.0.0.1", Some("mx.example"), None)
                .unwrap()
                .key,
            "127.0.0.1"
        );
        assert_eq!(
            lookup(get, "127.0.0.9", Some("mx.example"), None)
                .unwrap()
                .key,
            "=mx.example"
        );
        let r = lookup(get, "192.0.2.1", None, None).unwrap();
        assert_eq!((r.key.as_str(), r.env[0].0.as_str()), ("", "DEF"));
        assert_eq!(lookup(|_| None, "192.0.2.1", None, None), None);
    }

    /// tcpserver6 (seen with Debian's ucspi-tcp-ipv6 tcprulescheck): IPv6
    /// prefixes end in `:`; the rule `2001:db8::allow` stores `2001:db8:`.
    #[test]
    fn ipv6_prefixes() {
        let db: HashMap<Vec<u8>, Vec<u8>> = [
            (&b"2001:db8::5"[..], &b"+X=exact\0"[..]),
            (b"2001:db8:", b"+X=prefix\0"),
            (b"2001", b"+X=no-colon\0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
        let get = |k: &[u8]| db.get(k).cloned();
        assert_eq!(
            lookup(get, "2001:db8::5", None, None).unwrap().key,
            "2001:db8::5"
        );
        assert_eq!(
            lookup(get, "2001:db8::6", None, None).unwrap().key,
            "2001:db8:"
        );
        assert_eq!(lookup(get, "2001:db9::1", None, None), None);
    }
}
