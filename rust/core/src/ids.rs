//! Correlation id validation.
//!
//! A correlation id is lowercased, then must be exactly the configured number
//! of characters of `[a-z0-9]`. Only ASCII letters are lowercased: any other
//! character is rejected anyway, and Unicode case mapping would turn some of
//! them (the Kelvin sign, for one) into ASCII letters that no DNS label could
//! carry.

use std::borrow::Cow;

use crate::error::IdError;

/// Lowercases `value` and checks that it is `length` characters of `[a-z0-9]`.
///
/// Borrows `value` when it is already valid lowercase, which is the case for
/// every id that the listeners extract.
///
/// # Errors
///
/// [`IdError::Length`] when the length differs, [`IdError::Character`] for a
/// character outside `[a-z0-9]`.
///
/// # Examples
///
/// ```
/// use interactsh_core::ids::normalize;
///
/// assert_eq!(normalize("C59E3CRP82KE7BCNEDQ0", 20).unwrap(), "c59e3crp82ke7bcnedq0");
/// assert!(normalize("aaaa", 20).is_err());
/// ```
pub fn normalize(value: &str, length: usize) -> Result<Cow<'_, str>, IdError> {
    if value.len() == length && value.bytes().all(is_id_byte) {
        return Ok(Cow::Borrowed(value));
    }
    let found = value.chars().count();
    if found != length {
        return Err(IdError::Length {
            value: value.to_owned(),
            found,
            expected: length,
        });
    }
    if let Some(character) = value.chars().map(|c| c.to_ascii_lowercase()).find(|&c| !is_id_char(c)) {
        return Err(IdError::Character {
            value: value.to_owned(),
            character,
            expected: length,
        });
    }
    Ok(Cow::Owned(value.to_ascii_lowercase()))
}

/// Tells whether `value` names a valid correlation id, without building an error.
///
/// This is the check of the hot paths (`contains`, `push`), where an invalid id
/// simply matches no session.
pub fn normalize_quietly(value: &str, length: usize) -> Option<Cow<'_, str>> {
    if value.len() != length || !value.is_ascii() {
        return None;
    }
    if value.bytes().all(is_id_byte) {
        return Some(Cow::Borrowed(value));
    }
    let lowered = value.to_ascii_lowercase();
    lowered.bytes().all(is_id_byte).then_some(Cow::Owned(lowered))
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

fn is_id_char(character: char) -> bool {
    character.is_ascii_lowercase() || character.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_id_is_borrowed() {
        assert!(matches!(normalize("abc123", 6), Ok(Cow::Borrowed("abc123"))));
    }

    #[test]
    fn uppercase_id_is_lowercased() {
        assert_eq!(normalize(&"A".repeat(20), 20).unwrap(), "a".repeat(20));
        assert_eq!(normalize_quietly("AbC", 3).unwrap(), "abc");
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        for value in ["", "aaaa", "../../x", &"a".repeat(10 * 1024)] {
            let error = normalize(value, 20).unwrap_err();
            assert!(
                matches!(error, IdError::Length { expected: 20, .. }),
                "{value:?}: {error}"
            );
            assert!(normalize_quietly(value, 20).is_none());
        }
    }

    #[test]
    fn length_counts_characters() {
        let value = format!("{}\u{e9}", "a".repeat(19));
        let error = normalize(&value, 20).unwrap_err();
        assert_eq!(
            error,
            IdError::Character {
                value: value.clone(),
                character: '\u{e9}',
                expected: 20
            }
        );
        assert!(normalize_quietly(&value, 20).is_none());
    }

    #[test]
    fn punctuation_and_unicode_letters_are_rejected() {
        for value in ["aaaaa-aaaa", "aaaaa.aaaa", "aaaaa aaaa", "aaaaaaaaa\u{212a}"] {
            assert!(
                matches!(normalize(value, 10), Err(IdError::Character { .. })),
                "{value:?}"
            );
            assert!(normalize_quietly(value, 10).is_none(), "{value:?}");
        }
    }
}
