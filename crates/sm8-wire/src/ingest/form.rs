//! Decoding `application/x-www-form-urlencoded` text: ServiceM8's form-encoded callbacks and the query string.
//!
//! axum decodes forms only as async extractors of a whole request; the receiver needs to decode a body it has
//! already read, and a query string, synchronously, so the few lines of the format live here.

/// The `name=value` pairs of `input`, in order, with `+` and `%XX` decoded (invalid UTF-8 becomes U+FFFD).
pub fn parse(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&byte| byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&byte| byte == b'=') {
            Some(split) => (decode_component(&pair[..split]), decode_component(&pair[split + 1..])),
            None => (decode_component(pair), String::new()),
        })
        .collect()
}

/// The value of the first field called `name`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn decode_component(text: &[u8]) -> String {
    let mut decoded = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        match text[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let escaped = text.get(index + 1..index + 3).and_then(|hex| {
                    std::str::from_utf8(hex)
                        .ok()
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                });
                match escaped {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 2;
                    }
                    // A `%` that starts no escape stands for itself, as browsers and servers treat it.
                    None => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_split_and_decoded() {
        let fields = parse(b"mode=subscribe&challenge=a%2Bb+c&empty=&bare");
        assert_eq!(field(&fields, "mode"), Some("subscribe"));
        assert_eq!(field(&fields, "challenge"), Some("a+b c"));
        assert_eq!(field(&fields, "empty"), Some(""));
        assert_eq!(field(&fields, "bare"), Some(""));
        assert_eq!(field(&fields, "missing"), None);
    }

    #[test]
    fn an_encoded_json_document_survives_decoding() {
        let fields = parse(b"entry=%5B%7B%22uuid%22%3A%22u-1%22%7D%5D");
        assert_eq!(field(&fields, "entry"), Some(r#"[{"uuid":"u-1"}]"#));
    }

    #[test]
    fn broken_escapes_and_empty_pairs_are_tolerated() {
        let fields = parse(b"&a=100%&b=%zz&&c=%4");
        assert_eq!(field(&fields, "a"), Some("100%"));
        assert_eq!(field(&fields, "b"), Some("%zz"));
        assert_eq!(field(&fields, "c"), Some("%4"));
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn utf8_escapes_decode_to_text() {
        assert_eq!(field(&parse(b"name=caf%C3%A9"), "name"), Some("café"));
    }
}
