//! Session keys and the per-item AES encryption of `data` items.

use std::fmt;
use std::str::FromStr;

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::rngs::ThreadRng;
use rand::Rng;
use rsa::sha2::Sha256;
use rsa::PublicKey;
use zeroize::Zeroize;

use crate::error::{Error, KeyError};

/// Length of a session's AES-256 key in bytes.
pub const AES_KEY_LEN: usize = 32;
/// Length of the IV that prefixes every encrypted item, in bytes.
pub const IV_LEN: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;
type Aes256CfbEncryptor = cfb_mode::Encryptor<Aes256>;

/// The AES mode in which a session's `data` items are encrypted.
///
/// Clients from upstream 1.3.0 on decrypt CTR; older ones (nuclei 3.7.0 and
/// earlier) decrypt CFB with 128-bit segments.
///
/// # Examples
///
/// ```
/// use interactsh_core::AesMode;
///
/// assert_eq!("cfb".parse::<AesMode>().unwrap(), AesMode::Cfb);
/// assert!("ofb".parse::<AesMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AesMode {
    /// AES-256-CTR, the IV being the whole 128-bit big-endian initial counter block.
    #[default]
    Ctr,
    /// AES-256-CFB with full-block (128-bit) feedback, as Go's `NewCFBEncrypter`.
    Cfb,
}

impl AesMode {
    /// Returns the mode's name as the `-aes-mode` option spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ctr => "ctr",
            Self::Cfb => "cfb",
        }
    }
}

impl FromStr for AesMode {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "ctr" => Ok(Self::Ctr),
            "cfb" => Ok(Self::Cfb),
            _ => Err(Error::InvalidAesMode {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for AesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session's AES-256 key and its RSA-OAEP wrapping for the client.
///
/// The wrapping is computed once at registration, so every poll of the
/// session returns the same `aes_key` text. The key bytes are zeroed on drop.
pub struct SessionKey {
    key: [u8; AES_KEY_LEN],
    wrapped: Box<str>,
}

impl SessionKey {
    /// Generates a random key and wraps it with RSA-OAEP (SHA-256 for the
    /// digest and MGF1, empty label) under `public_key`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Wrap`] when the RSA encryption fails, which a key that
    /// [`parse_public_key`](super::parse_public_key) accepted does not do.
    pub fn generate(public_key: &PublicKey) -> Result<Self, KeyError> {
        let mut rng = rand::rng();
        let mut key = [0u8; AES_KEY_LEN];
        rng.fill_bytes(&mut key);
        let wrapped = public_key
            .oaep_encrypt_with_rng::<Sha256, _>(&mut rng, &key)
            .map_err(|error| KeyError::Wrap {
                detail: error.to_string(),
            })?;
        Ok(Self {
            key,
            wrapped: STANDARD.encode(wrapped).into_boxed_str(),
        })
    }

    /// Returns the base64 text of the RSA-OAEP ciphertext of the key: the
    /// `aes_key` field of a poll reply.
    pub fn wrapped(&self) -> &str {
        &self.wrapped
    }

    /// Returns the raw key bytes.
    pub fn as_bytes(&self) -> &[u8; AES_KEY_LEN] {
        &self.key
    }

    /// Returns an encryptor of `data` items under this key.
    pub fn sealer(&self, mode: AesMode) -> Sealer {
        Sealer::new(&self.key, mode)
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Encrypts records into `data` items: `base64(iv || AES(record))`.
///
/// One sealer serves one poll: it expands the AES key once and reuses its
/// buffer for every item.
///
/// # Examples
///
/// ```
/// use interactsh_core::{AesMode, Sealer};
///
/// let mut sealer = Sealer::new(&[7u8; 32], AesMode::Ctr);
/// let mut item = String::new();
/// sealer.seal_base64(b"{}", &mut item);
/// assert_eq!(item.len(), 24); // base64 of 16 IV bytes and 2 ciphertext bytes
/// ```
pub struct Sealer {
    cipher: Aes256,
    mode: AesMode,
    rng: ThreadRng,
    buffer: Vec<u8>,
}

impl Sealer {
    /// Creates a sealer for `key` in `mode`.
    pub fn new(key: &[u8; AES_KEY_LEN], mode: AesMode) -> Self {
        Self::with_buffer(key, mode, Vec::new())
    }

    /// Creates a sealer that encrypts in `buffer`, so that a caller who keeps
    /// the buffer between polls (see [`into_buffer`](Self::into_buffer)) makes
    /// no allocation once it is large enough.
    pub fn with_buffer(key: &[u8; AES_KEY_LEN], mode: AesMode, buffer: Vec<u8>) -> Self {
        Self {
            cipher: Aes256::new(key.into()),
            mode,
            rng: rand::rng(),
            buffer,
        }
    }

    /// Returns the scratch buffer, which holds the last item's IV and ciphertext.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buffer
    }

    /// Encrypts `record` under a fresh random IV and appends
    /// `base64(iv || ciphertext)` to `out`.
    pub fn seal_base64(&mut self, record: &[u8], out: &mut String) {
        let mut iv = [0u8; IV_LEN];
        self.rng.fill_bytes(&mut iv);
        self.buffer.clear();
        self.buffer.extend_from_slice(&iv);
        self.buffer.extend_from_slice(record);
        apply(&self.cipher, self.mode, &iv, &mut self.buffer[IV_LEN..]);
        STANDARD.encode_string(&self.buffer, out);
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Encrypts `buffer` in place with the key schedule `cipher` and `iv`.
fn apply(cipher: &Aes256, mode: AesMode, iv: &[u8; IV_LEN], buffer: &mut [u8]) {
    match mode {
        AesMode::Ctr => {
            let core = ctr::CtrCore::inner_iv_init(cipher.clone(), iv.into());
            Aes256Ctr::from_core(core).apply_keystream(buffer);
        }
        AesMode::Cfb => Aes256CfbEncryptor::inner_iv_init(cipher.clone(), iv.into()).encrypt(buffer),
    }
}

#[cfg(test)]
mod tests {
    use aes::cipher::KeyIvInit;
    use rsa::sha2::Sha256;

    use super::*;
    use crate::crypto::{parse_public_key, test_keys};

    /// Decrypts one `data` item with the same crates, as a client would.
    pub(crate) fn open(key: &[u8; AES_KEY_LEN], mode: AesMode, item: &str) -> Vec<u8> {
        let bytes = STANDARD.decode(item).unwrap();
        let (iv, ciphertext) = bytes.split_at(IV_LEN);
        let mut plaintext = ciphertext.to_vec();
        match mode {
            AesMode::Ctr => Aes256Ctr::new(key.into(), iv.try_into().unwrap()).apply_keystream(&mut plaintext),
            AesMode::Cfb => {
                cfb_mode::Decryptor::<Aes256>::new(key.into(), iv.try_into().unwrap()).decrypt(&mut plaintext)
            }
        }
        plaintext
    }

    #[test]
    fn wrapped_key_unwraps_with_private_key() {
        let private = test_keys::private_key(2048);
        let public = parse_public_key(&STANDARD.encode(test_keys::public_pem(2048))).unwrap();
        let key = SessionKey::generate(&public).unwrap();
        let wrapped = STANDARD.decode(key.wrapped()).unwrap();
        assert_eq!(wrapped.len(), 256);
        let unwrapped = private.oaep_decrypt::<Sha256>(&wrapped).unwrap();
        assert_eq!(unwrapped, key.as_bytes());
    }

    #[test]
    fn items_round_trip_in_both_modes() {
        let key = [0x5au8; AES_KEY_LEN];
        let record: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for mode in [AesMode::Ctr, AesMode::Cfb] {
            for length in [0, 1, 15, 16, 17, 1000] {
                let mut item = String::new();
                Sealer::new(&key, mode).seal_base64(&record[..length], &mut item);
                assert_eq!(open(&key, mode, &item), &record[..length], "{mode} {length}");
            }
        }
    }

    #[test]
    fn modes_differ_after_first_block() {
        let key = [1u8; AES_KEY_LEN];
        let iv = [2u8; IV_LEN];
        let cipher = Aes256::new((&key).into());
        let mut ctr = vec![0u8; 48];
        let mut cfb = vec![0u8; 48];
        apply(&cipher, AesMode::Ctr, &iv, &mut ctr);
        apply(&cipher, AesMode::Cfb, &iv, &mut cfb);
        assert_eq!(ctr[..16], cfb[..16]);
        assert_ne!(ctr[16..], cfb[16..]);
    }

    #[test]
    fn ctr_counter_carries_across_all_128_bits() {
        // An IV of all ones makes the second block's counter wrap to zero,
        // which a 64-bit counter would not do.
        let key = [3u8; AES_KEY_LEN];
        let iv = [0xffu8; IV_LEN];
        let cipher = Aes256::new((&key).into());
        let mut stream = vec![0u8; 32];
        apply(&cipher, AesMode::Ctr, &iv, &mut stream);
        let mut zero_block = aes::Block::default();
        aes::cipher::BlockCipherEncrypt::encrypt_block(&cipher, &mut zero_block);
        assert_eq!(stream[16..], zero_block[..]);
    }

    #[test]
    fn ivs_are_fresh() {
        let key = [4u8; AES_KEY_LEN];
        let mut sealer = Sealer::new(&key, AesMode::Ctr);
        let mut first = String::new();
        let mut second = String::new();
        sealer.seal_base64(b"same", &mut first);
        sealer.seal_base64(b"same", &mut second);
        assert_ne!(first, second);
    }

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("ctr".parse::<AesMode>().unwrap(), AesMode::Ctr);
        assert_eq!(AesMode::Cfb.to_string(), "cfb");
        assert_eq!(
            "CTR".parse::<AesMode>().unwrap_err(),
            Error::InvalidAesMode { value: "CTR".into() }
        );
    }
}
