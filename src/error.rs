//! Errors for the embedding application.
//!
//! A command that fails the way Redis commands fail (WRONGTYPE, a syntax error, ...) comes
//! back from `Node::execute` as a `Reply::Error`; the typed methods turn such a reply into
//! [`Error::Command`] so that `?` works.

use crate::reply::Reply;

#[derive(Debug, thiserror::Error)]
/// What can go wrong for the embedding application.
pub enum Error {
    /// The command failed with this Redis error reply, e.g.
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    #[error("{0}")]
    Command(String),
    /// A typed method got a reply of a shape it did not expect.
    #[error("unexpected reply to {command}: {reply:?}")]
    UnexpectedReply {
        /// The command that was run.
        command: &'static str,
        /// What it replied.
        reply: Reply,
    },
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A persistence file is damaged: which, where, and what is wrong.
    #[error("{}: byte {offset}: {what}", file.display())]
    Corrupt {
        /// The file.
        file: std::path::PathBuf,
        /// The byte offset where reading stopped making sense.
        offset: u64,
        /// What was wrong there.
        what: String,
    },
    #[error(transparent)]
    /// An I/O error.
    Io(#[from] std::io::Error),
}

/// Shoal's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
