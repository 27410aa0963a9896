//! Edge: TLS on fd 0/1 with rustls, synchronously, in this process. The
//! only module that names `rustls`, so an upgrade touches one file.
//!
//! Traps of driving rustls over two blocking fds (see shared design notes):
//! `Reader::read` answers `WouldBlock` when no plaintext is buffered, which
//! here means "read a record from fd 0"; and `Stream::write` would make one
//! record and one `write(2)` per reply. We own the loop instead: replies are
//! handed to rustls as one batch and every flight of records leaves in one
//! write, so neither Nagle's algorithm nor delayed ACKs stall a handshake or
//! a pipelined batch.
//!
//! One process serves one connection, so there is no session cache and no
//! TLS 1.3 tickets: both would die with the process.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::aws_lc_rs;
use rustls::server::AcceptedAlert;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{Acceptor, ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateRevocationListDer, UnixTime};

use crate::core::certrelay::ClientCert;
use rustls::{
    CipherSuite, ProtocolVersion, ServerConnection, SignatureAlgorithm, SupportedCipherSuite,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::fd::{FdTransport, IoError};

pub use rustls::ServerConfig;

/// What was negotiated, for the Received header, the log and qmail-queue's
/// environment: `TLSv1.3` and `TLS13_AES_256_GCM_SHA384`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// Why a handshake did not complete. Never carries key material.
#[derive(Debug)]
pub enum HandshakeError {
    /// A read or write on the link failed or timed out.
    Io(IoError),
    /// The client closed the connection mid-handshake.
    Eof,
    /// The TLS protocol failed (bad record, no common version, …).
    Tls(String),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Io(IoError::Timeout) => f.write_str("timeout"),
            HandshakeError::Io(IoError::Io(e)) => write!(f, "I/O error: {e}"),
            HandshakeError::Eof => f.write_str("client closed the connection"),
            HandshakeError::Tls(e) => f.write_str(e),
        }
    }
}

/// Why the certificate configuration is unusable. Never contains the
/// contents of the PEM file.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Describe a PEM error without quoting the file (it may hold a key).
fn pem_error(path: &Path, what: &str, e: &pem::Error) -> ConfigError {
    let why = match e {
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => format!("no {what} found"),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        _ => "unreadable PEM".into(),
    };
    ConfigError(format!("{}: {what}: {why}", path.display()))
}

/// aws-lc's provider, with aws-lc initialised. aws-lc is built without its
/// static initialiser (`BORINGSSL_NO_STATIC_INITIALIZER`, set in
/// .cargo/config.toml), which ran its CPU feature detection in every
/// process, a plain session too: five CPUID instructions, each a trap to
/// the hypervisor on a virtual machine (6.4 µs apiece on the one this
/// was measured on). Every use of aws-lc in this program starts here, so
/// the detection runs before any of it, once, and only in a process
/// that does TLS. (`init` is a `Once`; without the define it is a no-op.)
fn crypto() -> rustls::crypto::CryptoProvider {
    ::aws_lc_rs::init();
    aws_lc_rs::default_provider()
}

/// Build the server configuration from the certificate chain (and the key,
/// unless `key` names a file of its own) and an optional cipher list in
/// OpenSSL or rustls spelling. Returns warnings worth logging.
/// With `client_auth`, the handshake asks for an optional client
/// certificate and records what it shows (see [`ClientAuth`]).
pub fn server_config(
    cert: &Path,
    key: Option<&Path>,
    ciphers: Option<&str>,
    client_auth: Option<&ClientAuth>,
) -> Result<(Arc<ServerConfig>, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let mut provider = crypto();
    if let Some(list) = ciphers {
        let (suites, ignored) = choose_suites(list, &provider.cipher_suites);
        if !ignored.is_empty() {
            warnings.push(format!(
                "cipher list entries ignored (unknown to rustls, or not single suites): {}",
                ignored.join(":")
            ));
        }
        match suites {
            Some(s) => provider.cipher_suites = s,
            None => warnings.push("cipher list names no usable suite: using the defaults".into()),
        }
    }
    let keys = certified_keys(cert, key, &provider)?;
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError(format!("TLS settings: {e}")))?;
    let builder = match client_auth {
        Some(ca) => builder.with_client_cert_verifier(ca.0.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(ByClient(keys)));
    config.send_tls13_tickets = 0;
    // The server's order of suites decides (testssl: "cipher order
    // configured"): rustls' order, or TLSCIPHERS' as narrowed above.
    config.ignore_client_order = true;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok((Arc::new(config), warnings))
}

/// Client certificates for relaying (`control/clientca.pem`, optional
/// `control/clientcrl.pem`): the handshake sends a CertificateRequest
/// naming the CAs, the client may answer with no certificate, and a
/// certificate that does not verify never fails the handshake: the
/// verifier records the outcome instead of refusing, and
/// [`ClientAuth::outcome`] tells it after the handshake.
pub struct ClientAuth(Arc<RecordingVerifier>);

impl ClientAuth {
    /// Load the CA certificates and the CRLs.
    pub fn load(ca: &Path, crl: Option<&Path>) -> Result<ClientAuth, ConfigError> {
        let pem = read_file(ca, "CA certificate")?;
        let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(ca, "CA certificate", &e))?;
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(cas);
        if added == 0 {
            return Err(ConfigError(format!(
                "{}: no usable CA certificate{}",
                ca.display(),
                if ignored > 0 { " (none parses)" } else { "" }
            )));
        }
        let mut crls = Vec::new();
        if let Some(path) = crl {
            let pem = read_file(path, "CRL")?;
            crls = CertificateRevocationListDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| pem_error(path, "CRL", &e))?;
            if crls.is_empty() {
                return Err(ConfigError(format!("{}: no CRL found", path.display())));
            }
        }
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(crypto()))
                .with_crls(crls)
                // A CA without a CRL in the file is not a reason to refuse.
                .allow_unknown_revocation_status()
                .allow_unauthenticated()
                .build()
                .map_err(|e| {
                    ConfigError(format!(
                        "{}{}: {e}",
                        ca.display(),
                        crl.map(|c| format!(" or {}", c.display()))
                            .unwrap_or_default()
                    ))
                })?;
        Ok(ClientAuth(Arc::new(RecordingVerifier {
            inner,
            outcome: Mutex::new(None),
        })))
    }

    /// What the client showed in the handshake that used this.
    pub fn outcome(&self) -> ClientCert {
        self.0
            .outcome
            .lock()
            .map_or(None, |o| o.clone())
            .unwrap_or(ClientCert::None)
    }
}

/// The nextUpdate of each CRL in a PEM file (`None` for a CRL without
/// one), for `--check`.
pub fn crl_next_updates(path: &Path) -> Result<Vec<Option<i64>>, ConfigError> {
    let pem = read_file(path, "CRL")?;
    let crls: Vec<CertificateRevocationListDer<'static>> =
        CertificateRevocationListDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(path, "CRL", &e))?;
    Ok(crls
        .iter()
        .map(|c| crate::core::x509::crl_next_update(c.as_ref()))
        .collect())
}

/// webpki's client verifier, with its verdict recorded instead of
/// enforced: many MTAs present some certificate when asked, and a failed
/// handshake would lose their mail. Nothing trusts a certificate on the
/// handshake's success alone; only a recorded `Verified` grants anything.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    outcome: Mutex<Option<ClientCert>>,
}

impl RecordingVerifier {
    fn record(&self, c: ClientCert) {
        if let Ok(mut o) = self.outcome.lock() {
            *o = Some(c);
        }
    }

    /// A failed signature undoes a `Verified`: the client does not hold
    /// the certificate's key.
    fn signature(
        &self,
        r: Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if let Err(e) = r {
            let verified = matches!(
                self.outcome.lock().as_deref(),
                Ok(Some(ClientCert::Verified(_)))
            );
            if verified {
                self.record(ClientCert::NotVerified(format!("bad signature: {e}")));
            }
        }
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.record(
            match self
                .inner
                .verify_client_cert(end_entity, intermediates, now)
            {
                Ok(_) => ClientCert::Verified(end_entity.as_ref().to_vec()),
                Err(e) => ClientCert::NotVerified(e.to_string()),
            },
        );
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A quick look at the files: PEM with a certificate section and a private
/// key section, each base64 between its lines. No cryptography, and
/// nothing is decoded: the constant-time base64 decoding of the key alone
/// was a third of a plain session's instructions, of the certificate tens
/// of thousands. A certificate or key that is there but unusable is found
/// by [`server_config`] when STARTTLS is asked for (then 454).
pub fn check_pem(cert: &Path, key: Option<&Path>) -> Result<(), ConfigError> {
    let cert_pem = read_file(cert, "certificate")?;
    // One pass over the file for both (the key is usually in it too).
    let (mut has_cert, mut key_in_cert) = (false, false);
    for label in pem_labels(&cert_pem) {
        has_cert |= label == b"CERTIFICATE";
        key_in_cert |= KEY_KINDS.iter().any(|k| k.as_bytes() == label);
    }
    if !has_cert {
        return Err(no_certificate(cert));
    }
    let (key_path, has_key) = match key {
        Some(k) => (k, has_key_section(&read_file(k, "private key")?)),
        None => (cert, key_in_cert),
    };
    if has_key {
        Ok(())
    } else {
        Err(pem_error(
            key_path,
            "private key",
            &pem::Error::NoItemsFound,
        ))
    }
}

/// A whole file, or why not (never its contents).
/// A certificate and key fit in the first 8 KiB read.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    super::read_small(path, 8192).map_err(|e| pem_error(path, what, &pem::Error::Io(e)))
}

/// Whether `pem` has a private key section of a kind rustls reads (PKCS#8,
/// PKCS#1 RSA, SEC1 EC); see [`has_section`].
fn has_key_section(pem: &[u8]) -> bool {
    has_section(pem, &KEY_KINDS)
}

/// The labels of the private key sections rustls reads.
const KEY_KINDS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// Whether `pem` has a section of one of `kinds`: a BEGIN line at the start of a
/// line, then only base64 and white space up to its END line. Nothing is
/// decoded: EHLO asks this to decide whether to offer STARTTLS, and
/// decoding a certificate with the constant-time base64 of
/// rustls-pki-types cost a plain session tens of thousands of
/// instructions. Loading at STARTTLS decodes and judges it (454 then).
fn has_section(pem: &[u8], kinds: &[&str]) -> bool {
    pem_labels(pem).any(|label| kinds.iter().any(|k| k.as_bytes() == label))
}

/// The labels of the well-formed sections of `pem`, in one pass: each
/// BEGIN line at the start of a line, with a body of base64 and white
/// space (not empty) up to the first END line, which must carry the same
/// label.
fn pem_labels(pem: &[u8]) -> impl Iterator<Item = &[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const DASHES: &[u8] = b"-----";
    memchr::memmem::find_iter(pem, BEGIN).filter_map(move |at| {
        if at != 0 && pem[at - 1] != b'\n' {
            return None;
        }
        let after = &pem[at + BEGIN.len()..];
        let close = memchr::memmem::find(after, DASHES)?;
        let label = &after[..close];
        let rest = &after[close + DASHES.len()..];
        let stop = memchr::memmem::find(rest, END)?;
        let (body, end) = (&rest[..stop], &rest[stop + END.len()..]);
        let same = end.strip_prefix(label)?.starts_with(DASHES);
        (same && !label.contains(&b'\n') && base64_body(body)).then_some(label)
    })
}

/// Only base64 and white space, with at least one base64 letter or
/// digit. Written without early exits, so that it vectorises: a
/// certificate and key are a few kilobytes read at every EHLO.
fn base64_body(body: &[u8]) -> bool {
    let (mut alnum, mut bad) = (0u8, 0u8);
    for &c in body {
        let letter_or_digit = ((c | 0x20).wrapping_sub(b'a') < 26) | (c.wrapping_sub(b'0') < 10);
        let other = (c == b'+')
            | (c == b'/')
            | (c == b'=')
            | (c == b'\r')
            | (c == b'\n')
            | (c == b' ')
            | (c == b'\t');
        alnum |= u8::from(letter_or_digit);
        bad |= u8::from(!(letter_or_digit | other));
    }
    alnum == 1 && bad == 0
}

/// The certificates and the private keys, each file read once (the keys
/// from the certificate file unless they have their own).
fn read_pem(
    cert: &Path,
    key: Option<&Path>,
) -> Result<(Vec<CertificateDer<'static>>, Vec<PrivateKeyDer<'static>>), ConfigError> {
    let cert_pem = read_file(cert, "certificate")?;
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    pem_sections(&cert_pem, &mut certs, key.is_none().then_some(&mut keys))
        .map_err(|e| pem_error(cert, "certificate", &e))?;
    if certs.is_empty() {
        return Err(no_certificate(cert));
    }
    let key_path = match key {
        Some(k) => {
            pem_sections(
                &read_file(k, "private key")?,
                &mut Vec::new(),
                Some(&mut keys),
            )
            .map_err(|e| pem_error(k, "private key", &e))?;
            k
        }
        None => cert,
    };
    if keys.is_empty() {
        return Err(pem_error(
            key_path,
            "private key",
            &pem::Error::NoItemsFound,
        ));
    }
    Ok((certs, keys))
}

/// The certificates and (with `keys`) private keys of a PEM file, in file
/// order, in one pass: each section is base64-decoded once. (Collecting
/// certificates and keys with two `pem_slice_iter`s decodes every section
/// twice, and a key's constant-time decoding is the dearer one: 0.16 M
/// instructions for an RSA-2048 key.)
fn pem_sections(
    mut pem: &[u8],
    certs: &mut Vec<CertificateDer<'static>>,
    mut keys: Option<&mut Vec<PrivateKeyDer<'static>>>,
) -> Result<(), pem::Error> {
    use pem::SectionKind;
    while let Some((kind, der)) = pem::from_buf(&mut pem)? {
        match (kind, keys.as_deref_mut()) {
            (SectionKind::Certificate, _) => certs.push(der.into()),
            (SectionKind::PrivateKey, Some(k)) => k.push(PrivateKeyDer::Pkcs8(der.into())),
            (SectionKind::RsaPrivateKey, Some(k)) => k.push(PrivateKeyDer::Pkcs1(der.into())),
            (SectionKind::EcPrivateKey, Some(k)) => k.push(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    Ok(())
}

/// One key with its chain, as `--check` reports it.
pub struct KeyPair {
    /// `RSA`, `ECDSA`, `ED25519`.
    pub algorithm: String,
    /// The end-entity certificate, DER.
    pub leaf: Vec<u8>,
    /// Certificates in the chain, the leaf included.
    pub chain_len: usize,
}

/// Load, pair and describe the keys of a certificate file (`--check`).
pub fn key_pairs(cert: &Path, key: Option<&Path>) -> Result<Vec<KeyPair>, ConfigError> {
    let provider = crypto();
    Ok(certified_keys(cert, key, &provider)?
        .iter()
        .map(|k| KeyPair {
            algorithm: format!("{:?}", k.key.algorithm()),
            leaf: k.cert[0].as_ref().to_vec(),
            chain_len: k.cert.len(),
        })
        .collect())
}

/// Every private key in the files, each with the chain of the certificate
/// whose public key matches it, wherever they are in the file (Postfix's
/// `smtpd_tls_chain_files` allows the same). With one key the chain is
/// every certificate, its own first and the others in file order (as
/// before); with several, each chain follows issuer names up from its
/// leaf. ECDSA and Ed25519 keys come before RSA: [`ByClient`] offers the
/// first one the client can use.
fn certified_keys(
    cert: &Path,
    key: Option<&Path>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, ConfigError> {
    let (certs, keys) = read_pem(cert, key)?;
    let key_path = key.unwrap_or(cert);
    let several = keys.len() > 1;
    let mut out = Vec::new();
    for (n, der) in keys.into_iter().enumerate() {
        let signing = load_key(der, provider).map_err(|e| {
            ConfigError(format!(
                "{}: private key {}: {e}",
                key_path.display(),
                n + 1
            ))
        })?;
        // Why certificates were passed over, other than another key.
        let mut unreadable = None;
        let Some(leaf) = certs.iter().position(|c| {
            match CertifiedKey::new(vec![c.clone()], signing.clone()).keys_match() {
                Ok(()) => true,
                Err(rustls::Error::InconsistentKeys(_)) => false,
                Err(e) => {
                    unreadable.get_or_insert(e);
                    false
                }
            }
        }) else {
            return Err(ConfigError(format!(
                "{}: certificate or key: the {:?} private key{} matches no certificate in {}{}",
                cert.display(),
                signing.algorithm(),
                if several {
                    format!(" (number {})", n + 1)
                } else {
                    String::new()
                },
                cert.display(),
                unreadable.map_or_else(String::new, |e| format!(
                    " (a certificate could not be read: {e})"
                ))
            )));
        };
        let order = if several {
            chain_by_names(&certs, leaf)
        } else {
            std::iter::once(leaf)
                .chain((0..certs.len()).filter(|&i| i != leaf))
                .collect()
        };
        let chain = order.into_iter().map(|i| certs[i].clone()).collect();
        out.push(Arc::new(CertifiedKey::new(chain, signing)));
    }
    out.sort_by_key(|k| k.key.algorithm() == SignatureAlgorithm::RSA);
    Ok(out)
}

/// Load a private key, going straight to its kind's loader: rustls'
/// generic loader tries RSA first, and aws-lc's failed RSA parse of an EC
/// key costs about as much as loading it (a fifth of an ECDSA session).
///
/// RSA keys are parsed and used for signing by ring, everything else
/// (key exchange with X25519MLKEM768, the record layer, ECDSA and Ed25519
/// keys, certificate verification) stays with aws-lc. aws-lc runs its full
/// RSA key consistency check on every parse, and the process parses the
/// key once per STARTTLS: in a TLS 1.3 session with an RSA-2048 key that
/// was 2.5 M of the session's 14.2 M instructions, and aws-lc's RSA
/// signature took more CPU than ring's. ring checks the key's structure
/// and public part when it loads it. A key ring refuses (a size outside
/// its 2048 to 8192 bits, say) still goes to aws-lc, so nothing that
/// loaded before fails now.
fn load_key(
    der: PrivateKeyDer<'static>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
    use crate::core::x509::{KeyKind, pkcs8_kind};
    use aws_lc_rs::sign::{any_ecdsa_type, any_eddsa_type};
    match &der {
        PrivateKeyDer::Sec1(_) => any_ecdsa_type(&der),
        PrivateKeyDer::Pkcs8(p) => match pkcs8_kind(p.secret_pkcs8_der()) {
            Some(KeyKind::Ec) => any_ecdsa_type(&der),
            Some(KeyKind::Ed25519) => any_eddsa_type(p),
            _ => load_rsa_key(der, provider),
        },
        _ => load_rsa_key(der, provider),
    }
}

/// An RSA key (or one of no known kind) by ring, else by aws-lc.
fn load_rsa_key(
    der: PrivateKeyDer<'static>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
    match rustls::crypto::ring::sign::RsaSigningKey::new(&der) {
        Ok(k) => Ok(Arc::new(k)),
        Err(_) => provider.key_provider.load_private_key(der),
    }
}

/// Indices of the chain from `leaf` up: each next certificate is the one
/// whose subject is the current one's issuer, until a self-issued one or
/// none is found.
fn chain_by_names(certs: &[CertificateDer<'_>], leaf: usize) -> Vec<usize> {
    let mut chain = vec![leaf];
    while let Some((issuer, subject)) =
        crate::core::x509::issuer_subject(&certs[chain[chain.len() - 1]])
    {
        if issuer == subject {
            break;
        }
        let next = (0..certs.len()).find(|i| {
            !chain.contains(i)
                && crate::core::x509::issuer_subject(&certs[*i]).is_some_and(|(_, s)| s == issuer)
        });
        match next {
            Some(i) => chain.push(i),
            None => break,
        }
    }
    chain
}

/// Picks, per ClientHello, the first key (ECDSA and Ed25519 before RSA)
/// the client can verify: one of its signature schemes fits the key, and
/// it offers TLS 1.3 or a TLS 1.2 suite for that kind of key. A client
/// that fits none gets the last (RSA if there is one), and the handshake
/// says why it fails.
#[derive(Debug)]
struct ByClient(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for ByClient {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let suites = hello.cipher_suites();
        let named = |prefix: &str| {
            suites
                .iter()
                .any(|s| s.as_str().is_some_and(|n| n.starts_with(prefix)))
        };
        let tls13 = named("TLS13_");
        let fits = |k: &&Arc<CertifiedKey>| {
            k.key.choose_scheme(hello.signature_schemes()).is_some()
                && (tls13
                    || match k.key.algorithm() {
                        SignatureAlgorithm::RSA => named("TLS_ECDHE_RSA_"),
                        _ => named("TLS_ECDHE_ECDSA_"),
                    })
        };
        self.0.iter().find(fits).or(self.0.last()).cloned()
    }
}

fn no_certificate(path: &Path) -> ConfigError {
    ConfigError(format!("{}: no certificate found", path.display()))
}

/// OpenSSL names of the suites rustls offers by default.
const OPENSSL_NAMES: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Restrict `available` (rustls' defaults) to the suites `list` names, in
/// the list's order. Only suites rustls already offers can be chosen, so a
/// list can narrow the choice but never weaken it. TLS 1.3 suites are only
/// restricted if the list names one (OpenSSL's cipher string does not touch
/// TLS 1.3 either), and likewise for TLS 1.2. Returns `None` when nothing
/// usable is named, and the entries that were ignored.
fn choose_suites(
    list: &str,
    available: &[SupportedCipherSuite],
) -> (Option<Vec<SupportedCipherSuite>>, Vec<String>) {
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let mut ignored = Vec::new();
    for name in list
        .split(|c: char| c == ':' || c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
    {
        let by_openssl = OPENSSL_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, s)| *s);
        let found = available.iter().find(|s| {
            let suite = s.suite();
            by_openssl == Some(suite)
                || suite.as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        match found {
            Some(s) if !chosen.contains(s) => chosen.push(*s),
            Some(_) => {}
            None => ignored.push(name.to_string()),
        }
    }
    let is13 = |s: &SupportedCipherSuite| matches!(s, SupportedCipherSuite::Tls13(_));
    if chosen.is_empty() {
        return (None, ignored);
    }
    for want13 in [true, false] {
        if !chosen.iter().any(|s| is13(s) == want13) {
            chosen.extend(available.iter().filter(|s| is13(s) == want13));
        }
    }
    (Some(chosen), ignored)
}

/// Send the alert for a failed ClientHello (best effort) and say why.
fn send_alert(fd: &mut FdTransport, mut alert: AcceptedAlert, e: &rustls::Error) -> HandshakeError {
    let mut out = Vec::new();
    if alert.write_all(&mut out).is_ok() && !out.is_empty() {
        let _ = fd.write_all(&out);
    }
    HandshakeError::Tls(e.to_string())
}

/// Reads fd 0 for rustls, each read bounded by the transport's timeout.
struct FdReader<'a>(&'a mut FdTransport);

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e {
            IoError::Timeout => io::ErrorKind::TimedOut.into(),
            IoError::Io(e) => e,
        })
    }
}

fn from_io(e: io::Error) -> IoError {
    if e.kind() == io::ErrorKind::TimedOut {
        IoError::Timeout
    } else {
        IoError::Io(e)
    }
}

/// The client link under TLS.
pub struct TlsTransport {
    fd: FdTransport,
    conn: ServerConnection,
    /// Records waiting to be written, reused between flights.
    out: Vec<u8>,
}

impl TlsTransport {
    /// Run the server side of the handshake on `fd`, with `config`, or
    /// with what `by_name` gives for the client's SNI name (`None`: the
    /// default). On failure, the alert rustls prepared (if any) has been
    /// sent.
    pub fn handshake(
        mut fd: FdTransport,
        config: Arc<ServerConfig>,
        by_name: &dyn Fn(&str) -> Option<Arc<ServerConfig>>,
    ) -> Result<(TlsTransport, TlsInfo), HandshakeError> {
        // The ClientHello first, so the certificate for its name is
        // loaded here, in our own code, and only that one.
        let mut acceptor = Acceptor::default();
        let accepted = loop {
            match acceptor.read_tls(&mut FdReader(&mut fd)) {
                Ok(0) => return Err(HandshakeError::Eof),
                Ok(_) => {}
                Err(e) => return Err(HandshakeError::Io(from_io(e))),
            }
            match acceptor.accept() {
                Ok(Some(a)) => break a,
                Ok(None) => {}
                Err((e, alert)) => return Err(send_alert(&mut fd, alert, &e)),
            }
        };
        let server_name = accepted.client_hello().server_name().map(str::to_string);
        let chosen = server_name.as_deref().and_then(by_name).unwrap_or(config);
        let conn = accepted
            .into_connection(chosen)
            .map_err(|(e, alert)| send_alert(&mut fd, alert, &e))?;
        let mut t = TlsTransport {
            fd,
            conn,
            out: Vec::new(),
        };
        // Replies are bounded by the caller's batch size.
        t.conn.set_buffer_limit(None);
        while t.conn.is_handshaking() {
            t.flush().map_err(HandshakeError::Io)?;
            if !t.conn.wants_read() {
                return Err(HandshakeError::Tls("handshake stalled".into()));
            }
            match t.conn.read_tls(&mut FdReader(&mut t.fd)) {
                Ok(0) => return Err(HandshakeError::Eof),
                Ok(_) => {}
                Err(e) => return Err(HandshakeError::Io(from_io(e))),
            }
            if let Err(e) = t.conn.process_new_packets() {
                let _ = t.flush();
                return Err(HandshakeError::Tls(e.to_string()));
            }
        }
        // TLS 1.2: the server's Finished flight is still to be sent.
        t.flush().map_err(HandshakeError::Io)?;
        // TLS 1.3: the client's Finished came last; ACK it now (see ack_now).
        t.fd.ack_now();
        let info = TlsInfo {
            version: match t.conn.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
                Some(v) => format!("{v:?}"),
                None => "unknown".into(),
            },
            cipher: t
                .conn
                .negotiated_cipher_suite()
                .map(|s| {
                    let suite = s.suite();
                    suite
                        .as_str()
                        .map_or_else(|| format!("{suite:?}"), str::to_string)
                })
                .unwrap_or_else(|| "unknown".into()),
        };
        Ok((t, info))
    }

    /// Write every record rustls has ready, in one write.
    fn flush(&mut self) -> Result<(), IoError> {
        self.out.clear();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.out).map_err(IoError::Io)?;
        }
        if self.out.is_empty() {
            return Ok(());
        }
        self.fd.write_all(&self.out)
    }

    /// Read decrypted bytes (at least one), or `Ok(0)` when the client
    /// closed the connection (with or without close_notify).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(IoError::Io(e)),
            }
            // No plaintext buffered: send what rustls owes (a KeyUpdate
            // answer, say), then read the next records.
            self.flush()?;
            match self.conn.read_tls(&mut FdReader(&mut self.fd)) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => return Err(from_io(e)),
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush();
                return Err(IoError::Io(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }

    /// The link under TLS (for its read deadline).
    pub fn fd_mut(&mut self) -> &mut FdTransport {
        &mut self.fd
    }

    /// Encrypt `data` as one batch and write the records in one write.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), IoError> {
        self.conn.writer().write_all(data).map_err(IoError::Io)?;
        self.flush()
    }

    /// Send close_notify (best effort: the connection is ending).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(suites: &[SupportedCipherSuite]) -> Vec<String> {
        suites
            .iter()
            .map(|s| s.suite().as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn cipher_lists_narrow_but_never_widen() {
        let all = aws_lc_rs::default_provider().cipher_suites;
        // OpenSSL spelling of a TLS 1.2 suite: TLS 1.3 suites stay as they are.
        let (s, ignored) =
            choose_suites("ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-SHA:RC4", &all);
        let s = names(&s.unwrap());
        assert_eq!(s[0], "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
        assert_eq!(s.len(), 4, "{s:?}");
        assert!(s[1..].iter().all(|n| n.starts_with("TLS13_")), "{s:?}");
        assert_eq!(ignored, ["DHE-RSA-AES256-SHA", "RC4"]);
        // rustls spelling, TLS 1.3 only: TLS 1.2 keeps its defaults.
        let (s, ignored) = choose_suites("TLS13_AES_128_GCM_SHA256", &all);
        let s = names(&s.unwrap());
        assert_eq!(s[0], "TLS13_AES_128_GCM_SHA256");
        assert_eq!(s.iter().filter(|n| n.starts_with("TLS13_")).count(), 1);
        assert!(s.len() > 1);
        assert!(ignored.is_empty());
        // Only keywords and weak names: nothing usable, defaults kept.
        let (s, ignored) = choose_suites("HIGH:!aNULL:!MD5:NULL-SHA", &all);
        assert!(s.is_none());
        assert_eq!(ignored.len(), 4);
    }

    #[test]
    fn key_sections_found_by_their_lines() {
        let key = |kind: &str| format!("-----BEGIN {kind}-----\nAAAA\n-----END {kind}-----\n");
        for kind in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let pem = format!(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{}",
                key(kind)
            );
            assert!(has_key_section(pem.as_bytes()), "{kind}");
            assert!(has_key_section(key(kind).as_bytes()), "{kind} first");
        }
        for pem in [
            String::new(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            // No END line.
            "-----BEGIN PRIVATE KEY-----\nAAAA\n".into(),
            // END before BEGIN.
            "-----END PRIVATE KEY-----\n-----BEGIN PRIVATE KEY-----\n".into(),
            // Not at the start of a line.
            "x-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n".into(),
            // Encrypted keys are not usable.
            key("ENCRYPTED PRIVATE KEY"),
            // Mixed kinds.
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(),
            // A legacy encrypted key: its headers are not base64.
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END RSA PRIVATE KEY-----\n".into(),
            // Nothing inside.
            "-----BEGIN PRIVATE KEY-----\n\n-----END PRIVATE KEY-----\n".into(),
        ] {
            assert!(!has_key_section(pem.as_bytes()), "{pem:?}");
        }
        // Certificates, checked the same way without decoding.
        let cert = |body: &str| {
            format!("-----BEGIN CERTIFICATE-----\r\n{body}\r\n-----END CERTIFICATE-----\r\n")
        };
        assert!(has_section(
            cert("MIIB+/9=\r\nAb").as_bytes(),
            &["CERTIFICATE"]
        ));
        assert!(!has_section(cert("MII*B").as_bytes(), &["CERTIFICATE"]));
        // The byte classes at their edges, and bytes above ASCII.
        for c in 0..=255u8 {
            let want = c.is_ascii_alphanumeric() || b"+/=\r\n \t".contains(&c);
            assert_eq!(base64_body(&[b'A', c]), want, "{c:#x}");
        }
        assert!(!base64_body(b"+/=\r\n"), "no letter or digit");
        assert!(base64_body(b"0"));
        assert!(!has_section(b"MIIB", &["CERTIFICATE"]));
    }
}
