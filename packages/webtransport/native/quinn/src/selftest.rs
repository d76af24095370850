//! A quinn server and client on loopback in one tokio runtime: handshake with the caller's certificate,
//! ALPN h3, the server's connection taken at 0.5-RTT, one datagram echoed. Bounded by a 5 s timeout.
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

struct AcceptAny;

impl rustls::client::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::Certificate,
        _intermediates: &[rustls::Certificate],
        _server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        _now: SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        // Self-test only: the client talks to the server this function just started.
        Ok(rustls::client::ServerCertVerified::assertion())
    }
}

fn load(cert_pem: &str, key_pem: &str) -> Result<(Vec<rustls::Certificate>, rustls::PrivateKey), String> {
    let certs: Vec<rustls::Certificate> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .map_err(|e| format!("certificate PEM: {e}"))?
        .into_iter()
        .map(rustls::Certificate)
        .collect();
    if certs.is_empty() {
        return Err("no certificate in the PEM".into());
    }
    for item in rustls_pemfile::read_all(&mut key_pem.as_bytes()).map_err(|e| format!("key PEM: {e}"))? {
        match item {
            rustls_pemfile::Item::PKCS8Key(k) | rustls_pemfile::Item::ECKey(k) | rustls_pemfile::Item::RSAKey(k) => {
                return Ok((certs, rustls::PrivateKey(k)))
            }
            _ => {}
        }
    }
    Err("no private key in the PEM".into())
}

pub fn run(cert_pem: &str, key_pem: &str) -> Result<String, String> {
    let (certs, key) = load(cert_pem, key_pem)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        tokio::time::timeout(Duration::from_secs(5), async move {
            let mut server_crypto = rustls::ServerConfig::builder()
                .with_safe_defaults()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| format!("server TLS config: {e}"))?;
            server_crypto.alpn_protocols = vec![b"h3".to_vec()];
            // RFC 9001 §4.6.1: 0-RTT/0.5-RTT data needs max_early_data_size 0xffffffff in QUIC.
            server_crypto.max_early_data_size = u32::MAX;
            let server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
            let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap())
                .map_err(|e| format!("server bind: {e}"))?;
            let addr = server.local_addr().map_err(|e| e.to_string())?;
            let mut client_crypto = rustls::ClientConfig::builder()
                .with_safe_defaults()
                .with_custom_certificate_verifier(Arc::new(AcceptAny))
                .with_no_client_auth();
            client_crypto.alpn_protocols = vec![b"h3".to_vec()];
            let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap())
                .map_err(|e| format!("client bind: {e}"))?;
            client.set_default_client_config(quinn::ClientConfig::new(Arc::new(client_crypto)));
            let started = Instant::now();
            let srv = tokio::spawn(async move {
                let connecting = server.accept().await.ok_or("server endpoint closed")?;
                // A server's incoming connection always converts: 1-RTT keys are ready once its flight is out.
                let (conn, _) = connecting.into_0rtt().map_err(|_| "into_0rtt refused")?;
                let half_rtt = true;
                let d = conn.read_datagram().await.map_err(|e| format!("server read_datagram: {e}"))?;
                conn.send_datagram(d).map_err(|e| format!("server send_datagram: {e}"))?;
                let _ = conn.closed().await;
                server.wait_idle().await;
                Ok::<bool, String>(half_rtt)
            });
            let conn = client
                .connect(addr, "localhost")
                .map_err(|e| format!("connect: {e}"))?
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let handshake_ms = started.elapsed().as_secs_f64() * 1000.0;
            let max = conn.max_datagram_size().unwrap_or(0);
            conn.send_datagram(Bytes::from_static(b"quiver"))
                .map_err(|e| format!("client send_datagram: {e}"))?;
            let echo = conn.read_datagram().await.map_err(|e| format!("client read_datagram: {e}"))?;
            if &echo[..] != b"quiver" {
                return Err("datagram echo differs".to_string());
            }
            conn.close(0u32.into(), b"done");
            let half_rtt = srv.await.map_err(|e| e.to_string())??;
            client.wait_idle().await;
            Ok(format!(
                "{{\"handshakeMs\":{handshake_ms:.3},\"maxDatagramSize\":{max},\"serverHalfRtt\":{half_rtt},\"alpn\":\"h3\"}}"
            ))
        })
        .await
        .map_err(|_| "timed out after 5 s".to_string())?
    })
}
