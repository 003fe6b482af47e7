//! The storage type of one interaction record.
//!
//! Every queue stores [`Payload`] values and nothing else reaches into their
//! allocation, so a pooled allocator can later replace the boxed slice here
//! without touching the store.

use std::fmt;

/// One interaction record: the UTF-8 JSON bytes that a client decrypts.
///
/// # Examples
///
/// ```
/// use interactsh_core::Payload;
///
/// let payload = Payload::from(&b"{\"protocol\":\"dns\"}"[..]);
/// assert_eq!(payload.len(), 18);
/// assert_eq!(payload.as_bytes(), b"{\"protocol\":\"dns\"}");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(Box<[u8]>);

impl Payload {
    /// Returns the record's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Returns the record's length in bytes, the unit of every byte limit.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Tells whether the record is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes.into_boxed_slice())
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({:?})", String::from_utf8_lossy(&self.0))
    }
}
