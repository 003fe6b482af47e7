//! Parsing of the RSA public key that a client sends in `/register`.
//!
//! The `public-key` field is base64 of a PEM document. Upstream's Go client
//! labels its block `RSA PUBLIC KEY` although the DER inside is a
//! SubjectPublicKeyInfo, while interactsh-web labels it `PUBLIC KEY`, so the
//! label is ignored and the DER is read as SubjectPublicKeyInfo first and as a
//! PKCS#1 `RSAPublicKey` second.

use base64::Engine;
use rsa::pkcs1::{self, der::Decode};
use rsa::pkcs8::{spki::ObjectIdentifier, SubjectPublicKeyInfoRef};
use rsa::{BoxedUint, PublicKey};

use super::LENIENT_BASE64;
use crate::error::KeyError;

/// The smallest RSA modulus accepted, in bits; some clients still send 1024-bit keys.
pub const MIN_RSA_BITS: usize = 1024;
/// The largest RSA modulus accepted, in bits; larger keys cost CPU on every register.
pub const MAX_RSA_BITS: usize = 4096;

const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_END: &[u8] = b"-----END ";
const PEM_DASHES: &[u8] = b"-----";

/// Parses the `public-key` text of a registration into an RSA public key.
///
/// # Errors
///
/// A [`KeyError`] that names the step that failed: base64, the PEM block, the
/// DER structure, the key type or the modulus size.
///
/// # Examples
///
/// ```
/// use interactsh_core::crypto::parse_public_key;
///
/// let error = parse_public_key("bm90IGEga2V5").unwrap_err();
/// assert!(error.to_string().contains("no PEM block"));
/// ```
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let pem = decode_base64(text.as_bytes()).map_err(|detail| KeyError::Base64 { detail })?;
    let der = first_pem_block(&pem)?;
    public_key_from_der(&der)
}

/// Decodes padded standard base64, skipping ASCII whitespace as Go's decoder
/// skips line breaks.
pub(crate) fn decode_base64(text: &[u8]) -> Result<Vec<u8>, String> {
    let decoded = if text.iter().any(u8::is_ascii_whitespace) {
        let compact: Vec<u8> = text
            .iter()
            .copied()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        LENIENT_BASE64.decode(compact)
    } else {
        LENIENT_BASE64.decode(text)
    };
    decoded.map_err(|error| error.to_string())
}

/// Returns the DER inside the first `-----BEGIN <label>-----` block of `text`.
fn first_pem_block(text: &[u8]) -> Result<Vec<u8>, KeyError> {
    let begin = find(text, PEM_BEGIN).ok_or(KeyError::NoPemBlock)?;
    let after_begin = &text[begin + PEM_BEGIN.len()..];
    let label_length = find(after_begin, PEM_DASHES).ok_or(KeyError::NoPemBlock)?;
    let label = &after_begin[..label_length];
    if label.contains(&b'\n') {
        return Err(KeyError::NoPemBlock);
    }
    let body_and_rest = &after_begin[label_length + PEM_DASHES.len()..];
    let end_line = [PEM_END, label, PEM_DASHES].concat();
    let label = String::from_utf8_lossy(label).into_owned();
    let body_length = find(body_and_rest, &end_line).ok_or_else(|| KeyError::NoPemEnd { label: label.clone() })?;
    decode_base64(&body_and_rest[..body_length]).map_err(|detail| KeyError::PemBody { label, detail })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Reads DER as an RSA SubjectPublicKeyInfo, or else as a PKCS#1 `RSAPublicKey`.
fn public_key_from_der(der: &[u8]) -> Result<PublicKey, KeyError> {
    match SubjectPublicKeyInfoRef::from_der(der) {
        Ok(info) if info.algorithm.oid == pkcs1::ALGORITHM_OID => {
            let bits = info.subject_public_key.as_bytes().ok_or_else(|| KeyError::Der {
                detail: "the subjectPublicKey BIT STRING has unused bits".to_owned(),
            })?;
            let key = pkcs1::RsaPublicKeyRef::from_der(bits).map_err(|error| KeyError::Der {
                detail: format!("the subjectPublicKey is not a PKCS#1 RSAPublicKey: {error}"),
            })?;
            rsa_key_from_parts(key)
        }
        Ok(info) => Err(KeyError::NotRsa {
            algorithm: algorithm_name(info.algorithm.oid),
            min_bits: MIN_RSA_BITS,
            max_bits: MAX_RSA_BITS,
        }),
        Err(spki_error) => match pkcs1::RsaPublicKeyRef::from_der(der) {
            Ok(key) => rsa_key_from_parts(key),
            Err(_) => Err(KeyError::Der {
                detail: spki_error.to_string(),
            }),
        },
    }
}

/// Checks the modulus size before any big-number work, then builds the key.
fn rsa_key_from_parts(key: pkcs1::RsaPublicKeyRef<'_>) -> Result<PublicKey, KeyError> {
    let modulus = key.modulus.as_bytes();
    let bits = bit_length(modulus);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyError::Size {
            bits,
            min_bits: MIN_RSA_BITS,
            max_bits: MAX_RSA_BITS,
        });
    }
    let n = BoxedUint::from_be_slice_vartime(modulus);
    let e = BoxedUint::from_be_slice_vartime(key.public_exponent.as_bytes());
    PublicKey::new_with_size_limits(n, e, MIN_RSA_BITS..=MAX_RSA_BITS).map_err(|error| KeyError::Rsa {
        detail: error.to_string(),
    })
}

/// Returns the number of significant bits of a big-endian unsigned integer.
fn bit_length(big_endian: &[u8]) -> usize {
    let digits = match big_endian.iter().position(|&byte| byte != 0) {
        Some(start) => &big_endian[start..],
        None => return 0,
    };
    let leading_zeros = digits[0].leading_zeros() as usize;
    digits.len() * 8 - leading_zeros
}

/// Names the algorithms that clients are likely to send by mistake.
fn algorithm_name(oid: ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "EC",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS (signature only)",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => "unknown",
    };
    format!("{name} (OID {oid})")
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use rsa::traits::PublicKeyParts;

    use super::*;
    use crate::crypto::test_keys;

    fn encode(pem: &str) -> String {
        STANDARD.encode(pem)
    }

    fn bits(key: &PublicKey) -> u32 {
        key.n().bit_width_vartime()
    }

    #[test]
    fn spki_under_either_label_is_accepted() {
        let spki = test_keys::public_pem(2048);
        let relabelled = spki.replace("PUBLIC KEY", "RSA PUBLIC KEY");
        assert_eq!(bits(&parse_public_key(&encode(&spki)).unwrap()), 2048);
        assert_eq!(bits(&parse_public_key(&encode(&relabelled)).unwrap()), 2048);
    }

    #[test]
    fn pkcs1_is_accepted() {
        let pem = test_keys::public_pkcs1_pem(2048);
        assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        assert_eq!(bits(&parse_public_key(&encode(&pem)).unwrap()), 2048);
    }

    #[test]
    fn supported_sizes_are_accepted() {
        for size in [1024, 2048, 4096] {
            let key = parse_public_key(&encode(&test_keys::public_pem(size))).unwrap();
            assert_eq!(bits(&key), size as u32);
        }
    }

    #[test]
    fn sizes_outside_range_are_rejected() {
        for (pem, size) in [(test_keys::RSA_512_PUBLIC, 512), (test_keys::RSA_8192_PUBLIC, 8192)] {
            let error = parse_public_key(&encode(pem)).unwrap_err();
            assert_eq!(
                error,
                KeyError::Size {
                    bits: size,
                    min_bits: 1024,
                    max_bits: 4096
                }
            );
            assert!(error.to_string().contains(&format!("{size} bits")), "{error}");
        }
    }

    #[test]
    fn other_key_types_are_rejected() {
        for (pem, name) in [
            (test_keys::EC_P256_PUBLIC, "EC"),
            (test_keys::ED25519_PUBLIC, "Ed25519"),
        ] {
            let error = parse_public_key(&encode(pem)).unwrap_err();
            assert!(matches!(error, KeyError::NotRsa { .. }), "{error}");
            assert!(
                error.to_string().starts_with(&format!("public key type is {name} ")),
                "{error}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected_by_step() {
        assert!(matches!(
            parse_public_key("!!!not base64"),
            Err(KeyError::Base64 { .. })
        ));
        assert!(matches!(parse_public_key(&encode("hello")), Err(KeyError::NoPemBlock)));
        let unterminated = "-----BEGIN PUBLIC KEY-----\nAAAA\n";
        assert!(matches!(
            parse_public_key(&encode(unterminated)),
            Err(KeyError::NoPemEnd { .. })
        ));
        let mismatched = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n";
        assert!(matches!(
            parse_public_key(&encode(mismatched)),
            Err(KeyError::NoPemEnd { .. })
        ));
        let bad_body = "-----BEGIN PUBLIC KEY-----\n%%%%\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            parse_public_key(&encode(bad_body)),
            Err(KeyError::PemBody { .. })
        ));
        let not_der = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(matches!(parse_public_key(&encode(not_der)), Err(KeyError::Der { .. })));
    }

    #[test]
    fn base64_with_line_breaks_is_accepted() {
        let text = encode(&test_keys::public_pem(1024));
        let wrapped: Vec<&str> = text
            .as_bytes()
            .chunks(76)
            .map(|chunk| std::str::from_utf8(chunk).unwrap())
            .collect();
        assert!(parse_public_key(&wrapped.join("\r\n")).is_ok());
    }

    #[test]
    fn bit_length_skips_leading_zeros() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
    }
}
