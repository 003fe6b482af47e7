//! The cryptography of the wire protocol.
//!
//! * [`parse_public_key`] reads the client's RSA key from `/register`.
//! * [`SessionKey`] is a session's random AES-256 key together with its
//!   RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) wrapping, the `aes_key`
//!   field of every poll reply.
//! * [`Sealer`] encrypts each `data` item as `base64(iv || ciphertext)` with a
//!   fresh 16-byte IV, in AES-256-CTR or full-block CFB128 ([`AesMode`]).

mod cipher;
mod key;

use base64::engine::{general_purpose, GeneralPurpose};

pub use cipher::{AesMode, Sealer, SessionKey, AES_KEY_LEN, IV_LEN};
pub use key::{parse_public_key, MAX_RSA_BITS, MIN_RSA_BITS};

/// Standard padded base64 that, like Go's and Python's decoders, ignores
/// nonzero bits in the last symbol.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    general_purpose::PAD.with_decode_allow_trailing_bits(true),
);

/// Keys that the unit tests share, generated once with Python's `cryptography`
/// so the tests do not spend their time on RSA key generation.
#[cfg(test)]
pub(crate) mod test_keys {
    use rsa::pkcs1::{EncodeRsaPublicKey, LineEnding};
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    use rsa::PrivateKey;

    pub const RSA_512_PUBLIC: &str = include_str!("../../tests/data/rsa-512-public.pem");
    pub const RSA_8192_PUBLIC: &str = include_str!("../../tests/data/rsa-8192-public.pem");
    pub const EC_P256_PUBLIC: &str = include_str!("../../tests/data/ec-p256-public.pem");
    pub const ED25519_PUBLIC: &str = include_str!("../../tests/data/ed25519-public.pem");

    /// Returns the private key of `bits` bits (1024, 2048 or 4096).
    pub fn private_key(bits: usize) -> PrivateKey {
        let pem = match bits {
            1024 => include_str!("../../tests/data/rsa-1024-private.pem"),
            2048 => include_str!("../../tests/data/rsa-2048-private.pem"),
            4096 => include_str!("../../tests/data/rsa-4096-private.pem"),
            _ => panic!("no test key of {bits} bits"),
        };
        PrivateKey::from_pkcs8_pem(pem).expect("test key parses")
    }

    /// Returns the SubjectPublicKeyInfo PEM of the test key of `bits` bits.
    pub fn public_pem(bits: usize) -> String {
        private_key(bits)
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("test key encodes")
    }

    /// Returns the PKCS#1 PEM of the test key of `bits` bits.
    pub fn public_pkcs1_pem(bits: usize) -> String {
        private_key(bits)
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .expect("test key encodes")
    }
}
