//! The QUIC endpoint (quinn + rustls, TLS 1.3): the only module that imports quinn.

use super::{
    Claim, LinkError, PeerTls, SharedAuth, Side, DEFAULT_USER, HANDSHAKE_TIMEOUT_MS, PROOF_BYTES,
    PROOF_INPUT_BYTES, PROOF_LABEL,
};
use crate::resp::tls::{certificates, config_error};
use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// ALPN of Shoal's peer protocol: a peer speaking anything else fails the TLS handshake.
const ALPN: &[u8] = b"shoal-peer/1";
/// The name a connecting side asks for (certificates are checked by chain, not by name).
const SERVER_NAME: &str = "shoal-peer";
/// Keep-alives keep an idle link (a replica of a primary without writes) from timing out.
const KEEP_ALIVE_MS: u64 = 1_000;
/// A link silent this long is dead: with keep-alives every second, a peer that vanished
/// without closing (killed, cut off) is noticed within this.
const IDLE_TIMEOUT_MS: u64 = 10_000;
/// Verdicts the accepting side sends after checking a proof.
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 0;
/// QUIC application close code for a refused peer.
const CLOSE_REFUSED: u32 = 1;

mod udp;

/// A node's QUIC endpoint: accepts and opens authenticated links.
#[derive(Clone)]
pub struct Endpoint {
    inner: quinn::Endpoint,
    auth: SharedAuth,
    client: quinn::ClientConfig,
    /// Handshakes under way, run side by side so that a slow or silent peer holds up no one.
    handshakes: Arc<tokio::sync::Mutex<Handshakes>>,
}

type Handshakes = tokio::task::JoinSet<Result<Link, (SocketAddr, LinkError)>>;

impl Endpoint {
    /// Binds `addr` (UDP). Call it inside a tokio runtime. The error names the certificate
    /// file that cannot be used, if that is why.
    pub fn bind(addr: SocketAddr, auth: SharedAuth) -> io::Result<Endpoint> {
        let tls = auth.read().tls.clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (server, client) = match &tls {
            Some(files) => certificate_configs(files, &provider)?,
            None => generated_configs(&provider)?,
        };
        let server = quinn::crypto::rustls::QuicServerConfig::try_from(server)
            .map_err(|e| io::Error::other(format!("QUIC server config: {e}")))?;
        let client = quinn::crypto::rustls::QuicClientConfig::try_from(client)
            .map_err(|e| io::Error::other(format!("QUIC client config: {e}")))?;
        let transport = Arc::new(transport_config());
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
        server.transport_config(transport.clone());
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(transport);
        let mut endpoint = quinn::EndpointConfig::default();
        endpoint
            .max_udp_payload_size(UDP_PAYLOAD_BYTES_MAX)
            .map_err(|e| io::Error::other(format!("QUIC endpoint config: {e}")))?;
        let runtime =
            quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime"))?;
        let socket = udp::bind(addr, runtime.as_ref())?;
        let inner =
            quinn::Endpoint::new_with_abstract_socket(endpoint, Some(server), socket, runtime)?;
        Ok(Endpoint {
            inner,
            auth,
            client,
            handshakes: Arc::default(),
        })
    }

    /// The bound address (the port, when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Opens an authenticated link to the node at `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Link, LinkError> {
        let connecting = self
            .inner
            .connect_with(self.client.clone(), addr, SERVER_NAME)
            .map_err(|e| LinkError::Quic(e.to_string()))?;
        let handshake = async {
            let conn = connecting
                .await
                .map_err(|e| LinkError::Quic(e.to_string()))?;
            self.prove(&conn).await?;
            Ok(Link { conn })
        };
        within_handshake_timeout(handshake).await
    }

    /// The next authenticated link; `None` once the endpoint is closed. Peers that fail the
    /// handshake or their proof are refused and logged here, never returned.
    pub async fn accept(&self) -> Option<Link> {
        let mut handshakes = self.handshakes.lock().await;
        loop {
            tokio::select! {
                incoming = self.inner.accept() => {
                    let incoming = incoming?;
                    let endpoint = self.clone();
                    handshakes.spawn(async move {
                        let remote = incoming.remote_address();
                        let checked = within_handshake_timeout(async {
                            let conn = incoming.await.map_err(quic)?;
                            endpoint.check(&conn).await?;
                            Ok(Link { conn })
                        });
                        checked.await.map_err(|e| (remote, e))
                    });
                }
                Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                    match done {
                        Ok(Ok(link)) => return Some(link),
                        Ok(Err((remote, e))) => tracing::warn!("Refused peer {remote}: {e}"),
                        Err(e) => tracing::warn!("A peer handshake failed: {e}"),
                    }
                }
            }
        }
    }

    /// Connecting side: sends the user and our proof, then checks the verdict and the other
    /// side's proof.
    async fn prove(&self, conn: &quinn::Connection) -> Result<(), LinkError> {
        let session = session_material(conn)?;
        let (secret, user) = {
            let auth = self.auth.read();
            let user = auth.connect_user.as_deref().unwrap_or(DEFAULT_USER);
            (auth.connect_secret.clone(), user.to_string())
        };
        let user_len = u8::try_from(user.len())
            .map_err(|_| LinkError::Refused("masteruser is longer than 255 bytes".into()))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(quic)?;
        let claim = |side| Claim {
            session: &session,
            side,
            user: &user,
        };
        let tag = claim(Side::Connecting).prove(secret.as_deref().unwrap_or(""));
        let hello = [&[user_len], user.as_bytes(), &tag].concat();
        send.write_all(&hello).await.map_err(quic)?;
        let _ = send.finish();
        // A certificate the peer rejects shows here, as the link closing with its TLS alert.
        let mut verdict = [0u8; 1];
        recv.read_exact(&mut verdict)
            .await
            .map_err(|e| closed_why(conn, e))?;
        if verdict[0] != ACCEPTED {
            // The close that follows says why (the user or the secret).
            let closed = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await;
            return Err(match closed {
                Ok(_) => closed_why(conn, "refused"),
                Err(_) => LinkError::Refused("the peer refused our masteruser/masterauth".into()),
            });
        }
        let mut tag = [0u8; PROOF_BYTES];
        recv.read_exact(&mut tag)
            .await
            .map_err(|e| closed_why(conn, e))?;
        if let Some(secret) = secret {
            if !claim(Side::Accepting).verify(&secret, &tag) {
                conn.close(CLOSE_REFUSED.into(), b"unproven");
                return Err(LinkError::Refused(
                    "the peer could not prove it knows our secret (masterauth)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Accepting side: checks the peer's user and proof, answers with a verdict and our own
    /// proof.
    async fn check(&self, conn: &quinn::Connection) -> Result<(), LinkError> {
        let session = session_material(conn)?;
        let secret = self.auth.read().accept_secret.clone();
        let (mut send, mut recv) = conn.accept_bi().await.map_err(quic)?;
        let mut user_len = [0u8; 1];
        recv.read_exact(&mut user_len).await.map_err(quic)?;
        let mut user = vec![0u8; usize::from(user_len[0])];
        recv.read_exact(&mut user).await.map_err(quic)?;
        let user = String::from_utf8_lossy(&user).into_owned();
        let mut tag = [0u8; PROOF_BYTES];
        recv.read_exact(&mut tag).await.map_err(quic)?;
        let claim = |side| Claim {
            session: &session,
            side,
            user: &user,
        };
        let refusal = if user != DEFAULT_USER {
            Some(format!(
                "unknown user '{user}' (its masteruser; the only user is 'default')"
            ))
        } else if !secret
            .as_deref()
            .is_none_or(|s| claim(Side::Connecting).verify(s, &tag))
        {
            Some("wrong secret (its masterauth is not our requirepass)".to_string())
        } else {
            None
        };
        if let Some(why) = refusal {
            let _ = send.write_all(&[REFUSED]).await;
            let _ = send.finish();
            // Give the verdict a moment to leave before the close discards it.
            tokio::time::sleep(Duration::from_millis(50)).await;
            conn.close(CLOSE_REFUSED.into(), why.as_bytes());
            return Err(LinkError::Refused(why));
        }
        let mut verdict = Vec::with_capacity(1 + PROOF_BYTES);
        verdict.push(ACCEPTED);
        verdict.extend_from_slice(&claim(Side::Accepting).prove(secret.as_deref().unwrap_or("")));
        send.write_all(&verdict).await.map_err(quic)?;
        let _ = send.finish();
        Ok(())
    }

    /// Stops accepting and closes every link.
    pub fn close(&self) {
        self.inner.close(0u32.into(), b"closing");
    }

    /// Waits until the peers were told of the close (or `timeout` passed), so that they
    /// notice at once rather than at their idle timeout.
    pub async fn wait_closed(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.wait_idle()).await;
    }
}

fn quic(e: impl std::fmt::Display) -> LinkError {
    LinkError::Quic(e.to_string())
}

/// Why a link broke during the handshake: the peer's refusal, a TLS alert, or `e`.
fn closed_why(conn: &quinn::Connection, e: impl std::fmt::Display) -> LinkError {
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if close.error_code == CLOSE_REFUSED.into() =>
        {
            let why = String::from_utf8_lossy(&close.reason).into_owned();
            LinkError::Refused(format!("the peer refused us: {why}"))
        }
        Some(reason) => LinkError::Quic(reason.to_string()),
        None => quic(e),
    }
}

async fn within_handshake_timeout<T>(
    work: impl std::future::Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), work).await {
        Ok(done) => done,
        Err(_) => Err(LinkError::Quic("handshake timed out".into())),
    }
}

/// Keying material exported from the link's TLS session: what proofs are bound to.
fn session_material(conn: &quinn::Connection) -> Result<[u8; PROOF_INPUT_BYTES], LinkError> {
    let mut out = [0u8; PROOF_INPUT_BYTES];
    conn.export_keying_material(&mut out, PROOF_LABEL, b"")
        .map_err(|_| LinkError::Quic("cannot export keying material".into()))?;
    Ok(out)
}

/// The largest UDP payload MTU discovery may find: the protocol's limit, instead of quinn's
/// Ethernet-sized default (1452). Where the path carries more (loopback: 64 KB; jumbo
/// frames), bulk replication needs a fraction of the packets, each encrypted, sent and
/// acknowledged: SET -P 16 with a replica on the same host cost the replica half the CPU
/// and the primary a tenth less. Probing sizes a path drops costs only lost probes.
const UDP_PAYLOAD_BYTES_MAX: u16 = 65_527;

/// After QUIC takes losses of large packets for a black hole and falls back to 1200 bytes,
/// how soon it probes again (quinn's default: a minute). On a loaded host, a receiver's full
/// socket buffer loses large packets too, on a path that carries them.
const BLACK_HOLE_COOLDOWN_MS: u64 = 1_000;

fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(UDP_PAYLOAD_BYTES_MAX);
    mtu.black_hole_cooldown(Duration::from_millis(BLACK_HOLE_COOLDOWN_MS));
    transport.mtu_discovery_config(Some(mtu));
    transport.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)));
    let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
    transport.max_idle_timeout(idle.try_into().ok());
    transport
}

/// A rustls error, in the configuration error the node reports.
fn tls_error(e: rustls::Error) -> io::Error {
    config_error(format!("TLS: {e}"))
}

/// Both directions verified against the CA (`tls-replication yes`).
fn certificate_configs(
    files: &PeerTls,
    provider: &Arc<CryptoProvider>,
) -> io::Result<(rustls::ServerConfig, rustls::ClientConfig)> {
    let chain = certificates(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| {
        config_error(format!(
            "TLS: cannot read {}: {e}",
            files.key_file.display()
        ))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in certificates(&files.ca_cert_file)? {
        roots.add(cert).map_err(tls_error)?;
    }
    let roots = Arc::new(roots);
    let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| config_error(format!("TLS: {e}")))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(tls_error)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let server_verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| config_error(format!("TLS: {e}")))?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(server_verifier)))
        .with_client_auth_cert(chain, key)
        .map_err(tls_error)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    Ok((server, client))
}

/// A generated self-signed certificate; peers prove the shared secret instead.
fn generated_configs(
    provider: &Arc<CryptoProvider>,
) -> io::Result<(rustls::ServerConfig, rustls::ClientConfig)> {
    let generated = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
        .map_err(|e| io::Error::other(format!("generating a certificate: {e}")))?;
    let chain = vec![generated.cert.der().clone()];
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| io::Error::other(format!("generated key: {e}")))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
        .with_no_client_auth();
    client.alpn_protocols = vec![ALPN.to_vec()];
    Ok((server, client))
}

/// Verifies a server's chain against the CA, but not its name: peers are addressed by IP,
/// and Redis's TLS replication does not check names either.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any server certificate (its handshake signature is still checked): without a CA,
/// the secret proof bound to the session is what authenticates the peer.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An authenticated link to a peer: streams in both directions.
#[derive(Clone)]
pub struct Link {
    conn: quinn::Connection,
}

impl Link {
    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The local IP the peer reached (how a cluster node learns its own address), when the
    /// platform tells.
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        self.conn.local_ip()
    }

    /// The largest UDP payload the link sends now (grows as MTU discovery succeeds).
    pub fn path_mtu_bytes(&self) -> u16 {
        self.conn.stats().path.current_mtu
    }

    /// Opens a stream in both directions.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        let (send, recv) = self.conn.open_bi().await.map_err(quic)?;
        Ok((SendStream(send), RecvStream(recv)))
    }

    /// The next stream the peer opened in both directions.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), LinkError> {
        let (send, recv) = self.conn.accept_bi().await.map_err(quic)?;
        Ok((SendStream(send), RecvStream(recv)))
    }

    /// Opens a stream towards the peer.
    pub async fn open_uni(&self) -> Result<SendStream, LinkError> {
        Ok(SendStream(self.conn.open_uni().await.map_err(quic)?))
    }

    /// The next stream the peer opened towards us.
    pub async fn accept_uni(&self) -> Result<RecvStream, LinkError> {
        Ok(RecvStream(self.conn.accept_uni().await.map_err(quic)?))
    }

    /// Closes the link; the peer learns `reason`.
    pub fn close(&self, reason: &str) {
        self.conn.close(0u32.into(), reason.as_bytes());
    }

    /// Resolves when the link is closed, by either side or by a timeout: why.
    pub async fn closed(&self) -> String {
        self.conn.closed().await.to_string()
    }
}

/// The sending half of a stream.
pub struct SendStream(quinn::SendStream);

impl SendStream {
    /// Queues `chunk` without copying it.
    pub async fn write_chunk(&mut self, chunk: Bytes) -> io::Result<()> {
        self.0.write_chunk(chunk).await.map_err(io::Error::from)
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes).await.map_err(io::Error::from)
    }

    /// Ends the stream after what was written.
    pub fn finish(&mut self) {
        let _ = self.0.finish();
    }
}

/// The receiving half of a stream.
pub struct RecvStream(quinn::RecvStream);

impl RecvStream {
    /// The next bytes, at most `max_bytes`; `None` at the end of the stream.
    pub async fn read_chunk(&mut self, max_bytes: usize) -> io::Result<Option<Bytes>> {
        match self.0.read_chunk(max_bytes, true).await {
            Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}
