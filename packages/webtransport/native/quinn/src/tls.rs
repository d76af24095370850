//! rustls configurations for the engine: ALPN h3 (RFC 9114 §3.1), the caller's certificate, and the client's
//! server verification (CA, or none when the caller pins the certificate by hash and checks it itself).
use std::sync::Arc;
use std::time::SystemTime;

pub fn load_certs(pem: &str) -> Result<Vec<rustls::Certificate>, String> {
    let certs: Vec<rustls::Certificate> = rustls_pemfile::certs(&mut pem.as_bytes())
        .map_err(|e| format!("certificate PEM: {e}"))?
        .into_iter()
        .map(rustls::Certificate)
        .collect();
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    Ok(certs)
}

pub fn load_key(pem: &str) -> Result<rustls::PrivateKey, String> {
    for item in rustls_pemfile::read_all(&mut pem.as_bytes()).map_err(|e| format!("key PEM: {e}"))? {
        match item {
            rustls_pemfile::Item::PKCS8Key(k) | rustls_pemfile::Item::ECKey(k) | rustls_pemfile::Item::RSAKey(k) => {
                return Ok(rustls::PrivateKey(k))
            }
            _ => {}
        }
    }
    Err("no private key in the PEM".into())
}

pub fn server(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, String> {
    let mut c = rustls::ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(load_certs(cert_pem)?, load_key(key_pem)?)
        .map_err(|e| format!("server TLS config: {e}"))?;
    c.alpn_protocols = vec![b"h3".to_vec()];
    // No 0-RTT: early data is replayable (RFC 9001 §9.2) and no browser WebTransport client sends it. The
    // server's 0.5-RTT flight does not depend on it.
    c.max_early_data_size = 0;
    // No resumption either: a game server gains little from it and it keeps one more parser path closed.
    c.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(c)
}

/// Accepts any certificate: the caller verifies the chain after the handshake (W3C WebTransport §6.2
/// `serverCertificateHashes`, checked in JavaScript before any request is sent).
struct Unverified;

impl rustls::client::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::Certificate,
        _intermediates: &[rustls::Certificate],
        _server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        _now: SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::ServerCertVerified::assertion())
    }
}

static SIG_ALGS: &[&webpki::SignatureAlgorithm] = &[
    &webpki::ECDSA_P256_SHA256,
    &webpki::ECDSA_P256_SHA384,
    &webpki::ECDSA_P384_SHA256,
    &webpki::ECDSA_P384_SHA384,
    &webpki::ED25519,
    &webpki::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    &webpki::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    &webpki::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    &webpki::RSA_PKCS1_2048_8192_SHA256,
    &webpki::RSA_PKCS1_2048_8192_SHA384,
    &webpki::RSA_PKCS1_2048_8192_SHA512,
    &webpki::RSA_PKCS1_3072_8192_SHA384,
];

/// Verification against the caller's CA certificates (PEM `ca`), as the quiche engine's BoringSSL does it:
/// a leaf that is itself one of the given certificates is trusted as is (a self-signed certificate handed over as
/// its own CA; webpki alone refuses it with `CaUsedAsEndEntity`), else the chain must lead to one of them. The
/// name: a DNS name is checked here; an IP literal is checked by the caller (rustls 0.20 refuses IP names, so the
/// Node client checks the IP SAN with `X509Certificate.checkIP` before it sends a request).
struct CaVerifier {
    roots: Vec<Vec<u8>>,
}

impl rustls::client::ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::Certificate,
        intermediates: &[rustls::Certificate],
        server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        now: SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        let bad = |e: webpki::Error| rustls::Error::InvalidCertificateData(format!("{e:?}"));
        let cert = webpki::EndEntityCert::try_from(end_entity.0.as_slice()).map_err(bad)?;
        let time = webpki::Time::try_from(now).map_err(|_| rustls::Error::FailedToGetCurrentTime)?;
        if !self.roots.iter().any(|r| r == &end_entity.0) {
            let anchors: Vec<webpki::TrustAnchor> =
                self.roots.iter().filter_map(|d| webpki::TrustAnchor::try_from_cert_der(d).ok()).collect();
            let inter: Vec<&[u8]> = intermediates.iter().map(|c| c.0.as_slice()).collect();
            cert.verify_is_valid_tls_server_cert(SIG_ALGS, &webpki::TlsServerTrustAnchors(&anchors), &inter, time)
                .map_err(bad)?;
        }
        if let rustls::ServerName::DnsName(name) = server_name {
            let dns = webpki::DnsNameRef::try_from_ascii_str(name.as_ref())
                .map_err(|_| rustls::Error::InvalidCertificateData("bad DNS name".into()))?;
            cert.verify_is_valid_for_dns_name(dns).map_err(bad)?;
        }
        Ok(rustls::client::ServerCertVerified::assertion())
    }
}

pub fn client(ca_pem: Option<&str>, verify: bool, ip_literal: bool) -> Result<rustls::ClientConfig, String> {
    let b = rustls::ClientConfig::builder().with_safe_defaults();
    let _ = ip_literal;
    let mut c = match (ca_pem, verify) {
        (Some(ca), true) => {
            let roots = load_certs(ca)?.into_iter().map(|c| c.0).collect();
            b.with_custom_certificate_verifier(Arc::new(CaVerifier { roots })).with_no_client_auth()
        }
        // No CA and verification asked: the caller refuses the connection after the handshake (it has no
        // means to verify); pinned hashes: the caller checks the leaf's digest.
        _ => b.with_custom_certificate_verifier(Arc::new(Unverified)).with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"h3".to_vec()];
    Ok(c)
}
