//! Links between nodes: one QUIC endpoint per node, on the cluster bus port, carrying
//! replication (and, later, the cluster bus).
//!
//! Every link is authenticated before any data flows, one of two ways:
//!
//! - **Certificates** (`tls-cert-file`, `tls-key-file`, `tls-ca-cert-file` with
//!   `tls-replication yes`): each side presents its certificate and verifies the other's
//!   against the CA, as Redis's TLS replication does (the chain, not the host name: peers are
//!   addressed by IP).
//! - **A shared secret** otherwise: each node has a generated self-signed certificate, and
//!   each side proves that it knows the secret (`masterauth` on the connecting side,
//!   `requirepass` on the accepting side) with an HMAC over keying material exported from
//!   this very TLS session (RFC 5705). The secret never crosses the wire, and a proof is worth
//!   nothing on any other session, so it cannot be replayed or relayed.
//!
//! `quic.rs` (with its socket, `quic/udp.rs`) is the only module that imports quinn; the rest
//! of the crate sees [`Endpoint`], [`Link`] and byte streams.

pub mod frame;
mod quic;

pub use quic::{Endpoint, Link, RecvStream, SendStream};

use ring::hmac;
use std::path::PathBuf;
use std::sync::Arc;

/// The keying-material label both sides export for the secret proof.
const PROOF_LABEL: &[u8] = b"EXPORTER-shoal-peer-auth";
/// Bytes of keying material the proof covers.
const PROOF_INPUT_BYTES: usize = 32;
/// An HMAC-SHA256 tag.
const PROOF_BYTES: usize = 32;
/// Longest a peer has to finish the TLS handshake and its proof.
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// How a node proves itself to peers and checks them.
#[derive(Clone, Debug, Default)]
pub struct PeerAuth {
    /// Certificates verified both ways; `None`: a generated certificate and the secret proof.
    pub tls: Option<PeerTls>,
    /// What connecting peers must prove they know (`requirepass`); `None`: anyone may connect,
    /// as anyone may replicate from a Redis without a password.
    pub accept_secret: Option<String>,
    /// What this node proves when it connects (`masterauth`).
    pub connect_secret: Option<String>,
    /// The user it proves it as (`masteruser`; `None`: the default user). Shoal has no ACL
    /// users besides `default`, so a peer naming another is refused, as Redis refuses AUTH
    /// for a user that does not exist.
    pub connect_user: Option<String>,
}

/// The one user a peer may authenticate as.
const DEFAULT_USER: &str = "default";

/// PEM files for certificate authentication.
#[derive(Clone, Debug)]
pub struct PeerTls {
    /// This node's certificate chain (`tls-cert-file`).
    pub cert_file: PathBuf,
    /// Its private key (`tls-key-file`).
    pub key_file: PathBuf,
    /// The CA peers' certificates must chain to (`tls-ca-cert-file`).
    pub ca_cert_file: PathBuf,
}

/// Which end of a link computes a proof: the two proofs of one session differ, so a peer
/// cannot reflect the other's proof back to it.
#[derive(Clone, Copy)]
enum Side {
    Connecting,
    Accepting,
}

/// What a proof is about: the session (its exported keying material), the side computing
/// it and the user the connecting side claims to be.
struct Claim<'a> {
    session: &'a [u8; PROOF_INPUT_BYTES],
    side: Side,
    user: &'a str,
}

impl Claim<'_> {
    /// What the proof signs: the side, the user (length first), the session.
    fn signed(&self) -> Vec<u8> {
        let side: &[u8] = match self.side {
            Side::Connecting => b"connecting",
            Side::Accepting => b"accepting",
        };
        let user_len = [self.user.len().min(usize::from(u8::MAX)) as u8];
        [side, &user_len, self.user.as_bytes(), self.session].concat()
    }

    /// The proof that `secret` is known.
    fn prove(&self, secret: &str) -> [u8; PROOF_BYTES] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut out = [0u8; PROOF_BYTES];
        out.copy_from_slice(hmac::sign(&key, &self.signed()).as_ref());
        out
    }

    /// Whether `tag` proves `secret` (in constant time).
    fn verify(&self, secret: &str, tag: &[u8]) -> bool {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        hmac::verify(&key, &self.signed(), tag).is_ok()
    }
}

/// Why a link was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A local I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A secret proof failed, one way or the other.
    #[error("the peer did not authenticate: {0}")]
    Refused(String),
    /// The QUIC or TLS layer failed (an untrusted certificate, a timeout, a lost link).
    #[error("QUIC: {0}")]
    Quic(String),
}

/// Shared ownership of the auth settings, which CONFIG SET may change at run time.
pub type SharedAuth = Arc<parking_lot::RwLock<PeerAuth>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_depend_on_secret_session_side_and_user() {
        let session = [7u8; PROOF_INPUT_BYTES];
        let claim = |session, side, user| Claim {
            session,
            side,
            user,
        };
        let tag = claim(&session, Side::Connecting, "default").prove("s3cret");
        assert!(claim(&session, Side::Connecting, "default").verify("s3cret", &tag));
        assert!(!claim(&session, Side::Connecting, "default").verify("other", &tag));
        let other_session = [8u8; PROOF_INPUT_BYTES];
        assert!(!claim(&other_session, Side::Connecting, "default").verify("s3cret", &tag));
        assert!(!claim(&session, Side::Accepting, "default").verify("s3cret", &tag));
        assert!(!claim(&session, Side::Connecting, "admin").verify("s3cret", &tag));
        assert!(!claim(&session, Side::Connecting, "default").verify("s3cret", &tag[..31]));
    }
}
