//! TLS for the RESP listener (`tls-port`, `tls-cert-file`, `tls-key-file`,
//! `tls-ca-cert-file`, `tls-auth-clients`), with rustls: the server's certificate chain and key
//! from PEM files, and client certificates checked against the CA file when asked to.

use crate::config::{TlsAuthClients, TlsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::io;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

pub(crate) fn config_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

fn required<'a>(file: &'a Option<std::path::PathBuf>, directive: &str) -> io::Result<&'a Path> {
    file.as_deref()
        .ok_or_else(|| config_error(format!("TLS: {directive} must be set when tls-port is")))
}

pub(crate) fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| config_error(format!("TLS: cannot read {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "TLS: no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

/// The acceptor for `settings`; the error names the file and what is wrong with it.
pub fn acceptor(settings: &TlsSettings) -> io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(required(&settings.cert_file, "tls-cert-file")?)?;
    let key_path = required(&settings.key_file, "tls-key-file")?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| config_error(format!("TLS: cannot read {}: {e}", key_path.display())))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("TLS: {e}")))?;
    let builder = match (&settings.ca_cert_file, settings.auth_clients) {
        (_, TlsAuthClients::No) => builder.with_no_client_auth(),
        (None, _) => {
            return Err(config_error(
                "TLS: tls-auth-clients needs tls-ca-cert-file".into(),
            ))
        }
        (Some(ca), auth) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| config_error(format!("TLS: {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| config_error(format!("TLS: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error(format!("TLS: the certificate and key do not fit: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
