//! Errors of the store and its crypto, one enum per domain.
//!
//! The Python bindings map each [`Error`] variant to one class of
//! `interactsh.errors`, so every message here ends up in an HTTP 400 body:
//! it names the value, the problem and what the client should send instead.

use std::fmt;

use crate::slab::SlabError;

/// Any error that a [`Store`](crate::Store) operation returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The correlation id is not exactly the configured number of `[a-z0-9]` characters.
    #[error(transparent)]
    InvalidCorrelationId(#[from] IdError),
    /// The public key of a registration is not a usable RSA key.
    #[error(transparent)]
    InvalidPublicKey(#[from] KeyError),
    /// The AES mode is neither `ctr` nor `cfb`.
    #[error("AES mode {} is invalid: use ctr or cfb", quote(.value))]
    InvalidAesMode {
        /// The mode as the caller spelled it.
        value: String,
    },
    /// The correlation id is live and registered with a different secret.
    #[error("correlation-id provided already exists")]
    AlreadyRegistered,
    /// The correlation id is unknown or expired, or the secret does not match.
    ///
    /// Both cases share this variant, and its message is upstream's, so the
    /// API cannot be used to learn which correlation ids exist.
    #[error("could not get correlation-id from cache")]
    SessionNotFound,
    /// The shared bucket name is neither `extra` nor `tlddata`.
    #[error("shared bucket {} is unknown: use extra or tlddata", quote(.value))]
    InvalidBucket {
        /// The name as the caller spelled it.
        value: String,
    },
    /// A store option is out of range.
    #[error("store option {name} is invalid: {reason}")]
    InvalidOption {
        /// The option's name, as `StoreOptions` spells it.
        name: &'static str,
        /// The problem with the value, and the values that work.
        reason: String,
    },
    /// An argument of a store method is out of range.
    #[error("{name} is invalid: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// The problem with the value, and the values that work.
        reason: String,
    },
    /// A write did not fit the byte budget, even after evicting every record of idle sessions
    /// that it could.
    #[error(
        "store budget of {budget} bytes is used up ({total} bytes stored) and no idle session has \
         records left to evict, so {rejected} was rejected: retry after clients poll, or raise the budget"
    )]
    StoreFull {
        /// What the write would have stored.
        rejected: Rejected,
        /// Bytes the store accounts for.
        total: usize,
        /// The store's byte budget.
        budget: usize,
    },
    /// A write costs more than the whole byte budget, so it was rejected without evicting anything.
    #[error("{rejected} needs {cost} bytes, more than the store's whole budget of {budget} bytes")]
    LargerThanBudget {
        /// What the write would have stored.
        rejected: Rejected,
        /// The bytes the write would add to the store's total.
        cost: usize,
        /// The store's byte budget.
        budget: usize,
    },
    /// The slab pool could not take a payload although the budget had room.
    #[error(transparent)]
    Pool(#[from] SlabError),
}

/// What a write that did not fit the store's budget would have stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A record for a session, of `len` bytes.
    Record {
        /// Length of the record.
        len: usize,
    },
    /// A record for a shared bucket, of `len` bytes.
    SharedRecord {
        /// Length of the record.
        len: usize,
    },
    /// A new session.
    Session,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Record { len } => write!(f, "a record of {len} bytes"),
            Self::SharedRecord { len } => write!(f, "a shared record of {len} bytes"),
            Self::Session => f.write_str("a new session"),
        }
    }
}

/// The reason a correlation id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id (after lowercasing) has the wrong number of characters.
    #[error(
        "correlation id {} has {found} characters: this server expects {expected} characters of [a-z0-9] (set with -cidl)",
        quote(.value)
    )]
    Length {
        /// The id as received.
        value: String,
        /// Its length in characters.
        found: usize,
        /// The configured correlation id length.
        expected: usize,
    },
    /// The id has the right length but contains a character outside `[a-z0-9]`.
    #[error(
        "correlation id {} contains {character:?}, which is not in [a-z0-9]: this server expects {expected} characters of [a-z0-9] (set with -cidl)",
        quote(.value)
    )]
    Character {
        /// The id as received.
        value: String,
        /// The first character outside `[a-z0-9]` after lowercasing.
        character: char,
        /// The configured correlation id length.
        expected: usize,
    },
}

/// The reason a registration's public key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The `public-key` text is not standard padded base64.
    #[error("public key is not valid base64 ({detail}): send the base64 text of a PEM document")]
    Base64 {
        /// The base64 decoder's message.
        detail: String,
    },
    /// The decoded text contains no `-----BEGIN ...-----` / `-----END ...-----` block.
    #[error("public key contains no PEM block: send the base64 text of a '-----BEGIN PUBLIC KEY-----' document")]
    NoPemBlock,
    /// The first PEM block has no `-----END <label>-----` line with its label.
    #[error("PEM block {} has no matching '-----END {label}-----' line", quote(.label))]
    NoPemEnd {
        /// The label after `BEGIN`.
        label: String,
    },
    /// The body of the first PEM block is not valid base64.
    #[error("PEM block {} has a body that is not valid base64 ({detail})", quote(.label))]
    PemBody {
        /// The label after `BEGIN`.
        label: String,
        /// The base64 decoder's message.
        detail: String,
    },
    /// The DER is neither a SubjectPublicKeyInfo nor a PKCS#1 RSA public key.
    #[error(
        "PEM block is neither an RSA SubjectPublicKeyInfo nor a PKCS#1 RSAPublicKey ({detail}): send an RSA public key"
    )]
    Der {
        /// The DER decoder's message for the SubjectPublicKeyInfo attempt.
        detail: String,
    },
    /// The SubjectPublicKeyInfo contains a key of another algorithm.
    #[error("public key type is {algorithm}, not RSA: this server accepts RSA keys of {min_bits} to {max_bits} bits")]
    NotRsa {
        /// The algorithm's name when known, and its object identifier.
        algorithm: String,
        /// The smallest accepted modulus size.
        min_bits: usize,
        /// The largest accepted modulus size.
        max_bits: usize,
    },
    /// The RSA modulus is too small or too large.
    #[error("RSA public key has {bits} bits: this server accepts {min_bits} to {max_bits} bits")]
    Size {
        /// The modulus size in bits.
        bits: usize,
        /// The smallest accepted modulus size.
        min_bits: usize,
        /// The largest accepted modulus size.
        max_bits: usize,
    },
    /// The RSA key's numbers are unusable (an even modulus, an exponent out of range).
    #[error("RSA public key is invalid ({detail}): send a key made by a standard RSA key generator")]
    Rsa {
        /// The RSA library's message.
        detail: String,
    },
    /// Wrapping the session's AES key with the client's RSA key failed.
    #[error("could not encrypt the AES key with the RSA public key ({detail})")]
    Wrap {
        /// The RSA library's message.
        detail: String,
    },
}

/// Maximum number of characters of a client-supplied value that a message repeats.
const QUOTE_MAX_CHARS: usize = 40;

/// Quotes a client-supplied value for a message, escaping control characters
/// and cutting it after [`QUOTE_MAX_CHARS`] characters.
pub(crate) fn quote(value: &str) -> Quoted<'_> {
    Quoted(value)
}

/// A value displayed between single quotes, escaped and shortened.
pub(crate) struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for (index, character) in self.0.chars().enumerate() {
            if index == QUOTE_MAX_CHARS {
                return f.write_str("...'");
            }
            match character {
                '\'' => f.write_str("\\'")?,
                _ => write!(f, "{}", character.escape_debug())?,
            }
        }
        f.write_str("'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("ab'c\n").to_string(), r"'ab\'c\n'");
        let long = "a".repeat(100);
        assert_eq!(quote(&long).to_string(), format!("'{}...'", "a".repeat(40)));
    }

    #[test]
    fn length_message_names_expected_length() {
        let error = IdError::Length {
            value: "aaaa".into(),
            found: 4,
            expected: 20,
        };
        assert_eq!(
            error.to_string(),
            "correlation id 'aaaa' has 4 characters: this server expects 20 characters of [a-z0-9] (set with -cidl)"
        );
    }
}
