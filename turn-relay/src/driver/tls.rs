//! TURN over TLS (RFC 8656 §3.1, port 5349): rustls in front of the TCP stream loop.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::shard::Shard;
use super::tcp::serve_stream;
use crate::core::allocation::{FiveTuple, Transport};

/// Loads a PEM certificate chain and key into an acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid("certificate", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("certificate", &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub(crate) async fn accept_loop(
    shard: Rc<Shard>,
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "TURN TLS listener failed");
            return;
        }
    };
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "TURN TLS accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(shard.listen);
        let acceptor = acceptor.clone();
        let shard = shard.clone();
        tokio::task::spawn_local(async move {
            // The handshake runs in its own task so a slow client holds up no one.
            match acceptor.accept(stream).await {
                Ok(tls) => {
                    let tuple = FiveTuple {
                        client,
                        server: local,
                        transport: Transport::Tls,
                    };
                    serve_stream(shard, tls, tuple).await;
                }
                Err(e) => tracing::debug!(error = %e, "TURN TLS handshake failed"),
            }
        });
    }
}
