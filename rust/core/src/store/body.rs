//! The poll reply body, written as JSON text in one pass.
//!
//! The layout is upstream's struct order, followed by a newline as Go's
//! `json.Encoder` writes it:
//! `{"data":[...]|null,"extra":[...]|null,"aes_key":"...","tlddata":[...]}`,
//! where `tlddata` appears only when it has records.

use std::fmt::Write;

use crate::crypto::{Sealer, IV_LEN};

/// Writes the body of a poll reply into `out`, replacing its contents: `data`
/// records encrypted by `sealer`, the shared records as JSON strings, and the
/// wrapped AES key.
///
/// It reserves the body's length up front, so `out` does not grow when its
/// capacity already covers the page. The length is exact except that JSON
/// escapes in shared records make the body longer than reserved.
pub(crate) fn write_poll_body<'a>(
    out: &mut String,
    data: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    sealer: &mut Sealer,
    extra: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    aes_key: &str,
    tlddata: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
) {
    let capacity = data.clone().map(|record| sealed_item_len(record.len())).sum::<usize>()
        + plain_list_len(extra.clone())
        + plain_list_len(tlddata.clone())
        + aes_key.len()
        + BODY_FRAME_LEN;
    out.clear();
    out.reserve(capacity);
    let mut body = BodyWriter { text: out };
    body.data(data, sealer);
    body.extra(extra);
    body.aes_key(aes_key);
    body.tlddata(tlddata);
    body.finish();
}

/// Bytes of the body around its lists (keys, brackets, the final newline), rounded up.
const BODY_FRAME_LEN: usize = 64;

/// Writes the parts of a poll reply body in their wire order.
struct BodyWriter<'a> {
    text: &'a mut String,
}

impl BodyWriter<'_> {
    /// Writes the `data` list: each record encrypted by `sealer`, or `null` when there are none.
    fn data<'a>(&mut self, records: impl ExactSizeIterator<Item = &'a [u8]>, sealer: &mut Sealer) {
        self.text.push_str("{\"data\":");
        self.list(records, |text, record| {
            text.push('"');
            sealer.seal_base64(record, text);
            text.push('"');
        });
    }

    /// Writes the `extra` list of plaintext records, or `null` when there are none.
    fn extra<'a>(&mut self, records: impl ExactSizeIterator<Item = &'a [u8]>) {
        self.text.push_str(",\"extra\":");
        self.list(records, write_json_string);
    }

    fn aes_key(&mut self, wrapped: &str) {
        self.text.push_str(",\"aes_key\":\"");
        self.text.push_str(wrapped);
        self.text.push('"');
    }

    /// Writes the `tlddata` list when it has records, and nothing otherwise.
    fn tlddata<'a>(&mut self, records: impl ExactSizeIterator<Item = &'a [u8]>) {
        if records.len() > 0 {
            self.text.push_str(",\"tlddata\":");
            self.list(records, write_json_string);
        }
    }

    /// Closes the object.
    fn finish(self) {
        self.text.push_str("}\n");
    }

    fn list<'a>(
        &mut self,
        records: impl ExactSizeIterator<Item = &'a [u8]>,
        mut write_item: impl FnMut(&mut String, &[u8]),
    ) {
        if records.len() == 0 {
            self.text.push_str("null");
            return;
        }
        self.text.push('[');
        for (index, record) in records.enumerate() {
            if index > 0 {
                self.text.push(',');
            }
            write_item(self.text, record);
        }
        self.text.push(']');
    }
}

/// Returns the length of a list of plaintext records as JSON strings, assuming no escapes.
fn plain_list_len<'a>(items: impl Iterator<Item = &'a [u8]>) -> usize {
    items.map(|item| item.len() + 3).sum()
}

/// Returns the length of a `data` item's base64 text, quotes included.
fn sealed_item_len(record_len: usize) -> usize {
    (IV_LEN + record_len).div_ceil(3) * 4 + 3
}

/// Appends `bytes` as a JSON string, escaped exactly as Python's
/// `json.dumps(text, ensure_ascii=False)` escapes it.
///
/// Quotes, backslashes and control characters below U+0020 are escaped;
/// everything else is copied as UTF-8. Invalid UTF-8 becomes U+FFFD, as
/// `bytes.decode("utf-8", "replace")` does, so the body is always valid JSON
/// and both store engines write the same bytes.
pub(crate) fn write_json_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        write_escaped(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out.push('"');
}

fn write_escaped(out: &mut String, text: &str) {
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        if escape.is_empty() {
            // `fmt::Write` for `String` never returns an error.
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> String {
        let mut out = String::new();
        write_json_string(&mut out, bytes);
        out
    }

    #[test]
    fn plain_text_is_quoted() {
        assert_eq!(json(b"{\"a\":1}"), r#""{\"a\":1}""#);
        assert_eq!(json("caf\u{e9}".as_bytes()), "\"caf\u{e9}\"");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(json(b"a\nb\tc\r\\\x08\x0c"), r#""a\nb\tc\r\\\b\f""#);
        assert_eq!(json(b"\x00\x1f\x7f"), "\"\\u0000\\u001f\x7f\"");
    }

    #[test]
    fn other_characters_are_copied() {
        assert_eq!(json("<>& \u{2028} \u{1f642}".as_bytes()), "\"<>& \u{2028} \u{1f642}\"");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(json(b"a\xffb\xed\xa0\x80"), "\"a\u{fffd}b\u{fffd}\u{fffd}\u{fffd}\"");
    }

    #[test]
    fn sealed_item_len_matches_base64() {
        for record_len in [0, 1, 2, 3, 100] {
            let mut sealer = Sealer::new(&[0; 32], crate::AesMode::Ctr);
            let mut item = String::new();
            sealer.seal_base64(&vec![b'x'; record_len], &mut item);
            assert_eq!(sealed_item_len(record_len), item.len() + 3, "{record_len}");
        }
    }
}
