//! TLS on a listener (rustls, TLS 1.2 and 1.3): the node's certificate chain and key from PEM
//! files, and, for a listener that asks for it, mutual TLS that lets in exactly the client
//! certificates of a list (the bank's host link, an agency's gateway) and nothing else. And
//! the client side the switch's own tools use to reach a TLS admin listener ([`connector`]).
//!
//! The list is *pinning*, not a certificate authority: a client is in when the certificate it
//! presents is byte for byte one of the list and it proves it holds the key (the handshake's
//! signature). Taking a client off the list and restarting the node is how it is shut out;
//! its certificate's dates are not what lets it in.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{
    WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::either::Either;

/// The acceptor of one listener: `cert` (PEM, the node's certificate first, then any
/// intermediates) and `key` (PEM, PKCS#8, PKCS#1 or SEC1); with `clients` (PEM, one or more
/// certificates), only those clients are let in.
pub fn acceptor(cert: &Path, key: &Path, clients: Option<&Path>) -> anyhow::Result<TlsAcceptor> {
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(Arc::new(PinnedClients {
            allowed: certificates(path)?,
            algorithms: provider.signature_verification_algorithms,
        })),
    };
    let config = builder
        .with_single_cert(chain, key)
        .with_context(|| format!("the TLS key does not go with {}", cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The client of a TLS listener (`ssn-switch settle` calling the admin API over HTTPS): trusts
/// the certificates of `ca` (PEM: the switch's own certificate, or the CA that issued it) and
/// nothing else, and presents `client` (certificate and key, PEM) for mutual TLS. The crypto
/// provider is given to rustls here, so nothing depends on a process-wide default.
pub fn connector(ca: &Path, client: Option<(&Path, &Path)>) -> anyhow::Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots
            .add(certificate)
            .with_context(|| format!("a certificate of {} cannot be trusted", ca.display()))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading the TLS private key {}", key.display()))?;
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .with_context(|| format!("the TLS key does not go with {}", cert.display()))?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The crypto provider of every TLS config here: ring, not aws-lc, because it builds with the
/// C compiler alone. It offers no post-quantum key exchange, which is why rustls marks it
/// deprecated.
fn provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let found: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    if found.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(found)
}

/// Mutual TLS by a list of client certificates.
#[derive(Debug)]
struct PinnedClients {
    allowed: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self
            .allowed
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            Ok(ClientCertVerified::assertion())
        } else {
            metrics::counter!("ssn_tls_clients_refused_total").increment(1);
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS handshakes of the admin listener in progress at once; past it new connections wait in
/// the kernel's backlog.
const ADMIN_HANDSHAKES_MAX: usize = 1_024;

/// The admin API's listener for `axum::serve`, in the clear or over TLS. Over TLS each
/// handshake runs on its own task within `handshake_timeout`, so a client that stalls its
/// handshake holds only itself.
#[derive(Debug)]
pub enum AdminListener {
    /// Plain HTTP.
    Plain(TcpListener),
    /// HTTPS: sessions whose handshake finished, as they finish.
    Tls {
        accepted: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        local: SocketAddr,
    },
}

impl AdminListener {
    /// Serves `listener` over TLS, accepting on the current runtime.
    pub fn tls(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
    ) -> std::io::Result<AdminListener> {
        let local = listener.local_addr()?;
        let (sender, accepted) = tokio::sync::mpsc::channel(ADMIN_HANDSHAKES_MAX);
        let handshakes = Arc::new(Semaphore::new(ADMIN_HANDSHAKES_MAX));
        tokio::spawn(async move {
            let mut listener = listener;
            loop {
                let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
                    return;
                };
                // axum's own accept: it waits out errors such as running out of descriptors.
                let (stream, peer) = axum::serve::Listener::accept(&mut listener).await;
                if sender.is_closed() {
                    return;
                }
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(session)) => {
                            let _ = sender.send((session, peer)).await;
                        }
                        _ => handshake_failed("admin"),
                    }
                });
            }
        });
        Ok(AdminListener::Tls { accepted, local })
    }
}

impl axum::serve::Listener for AdminListener {
    type Io = Either<TcpStream, TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self {
            AdminListener::Plain(listener) => {
                let (stream, peer) = axum::serve::Listener::accept(listener).await;
                (Either::Left(stream), peer)
            }
            AdminListener::Tls { accepted, .. } => match accepted.recv().await {
                Some((session, peer)) => (Either::Right(session), peer),
                // The accepting task ended (its runtime is shutting down): nothing more comes.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            AdminListener::Plain(listener) => listener.local_addr(),
            AdminListener::Tls { local, .. } => Ok(*local),
        }
    }
}

/// Counts a handshake that failed or did not finish in time (a plaintext client on a TLS
/// port, a certificate refused, a scanner).
pub fn handshake_failed(listener: &'static str) {
    metrics::counter!("ssn_tls_handshakes_failed_total", "listener" => listener).increment(1);
}
