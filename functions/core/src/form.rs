//! The three `name=value` encodings an edge request carries: the URL query string, an
//! `application/x-www-form-urlencoded` body (nginx-rtmp hooks, docs/PROTOCOLS.md §1) and the
//! `Cookie` header (seed 000's `sessionid`).
//!
//! Query and form use the same WHATWG `application/x-www-form-urlencoded` rules: pairs split on
//! `&`, `+` means a space, `%XX` is a byte. A value that is not valid UTF-8 after decoding, or
//! holds a broken `%` escape, is treated as absent: every caller compares the value against
//! something it signed, so a garbled value can only ever be refused.
//!
//! Lookups return the FIRST occurrence of a name. Signed URLs never repeat a parameter, and
//! picking one fixed occurrence means a verifier and a later reader can never see different
//! values for the same name.

/// The percent-decoded value of the first `name` parameter in a query string or form body
/// (without the leading `?`).
pub fn field(encoded: &str, name: &str) -> Option<String> {
    encoded
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(raw_name, _)| decode(raw_name).as_deref() == Some(name))
        .and_then(|(_, raw_value)| decode(raw_value))
}

/// The value of the first cookie called `name` in a `Cookie` request header.
///
/// Cookie values are taken verbatim (RFC 6265 §5.4 does not decode them), with surrounding
/// double quotes removed, because seed 000's nginx signs `$cookie_sessionid` exactly as sent.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(cookie_name, _)| cookie_name.trim() == name)
        .map(|(_, value)| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
}

/// Percent-encodes `value` for a query string: everything except RFC 3986 unreserved
/// characters is escaped, so the result survives both URL and form decoders unchanged.
pub fn encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            push_escape(&mut encoded, byte);
        }
    }
    encoded
}

/// Appends `name=value` to an `application/x-www-form-urlencoded` body, `&`-separated, escaped
/// as the WHATWG form serializer does (and nginx-rtmp's hook receivers expect): ASCII
/// alphanumerics and `*-._` kept, a space as `+`, every other byte `%XX`.
pub fn append_pair(body: &mut String, name: &str, value: &str) {
    if !body.is_empty() {
        body.push('&');
    }
    append_form_encoded(body, name);
    body.push('=');
    append_form_encoded(body, value);
}

fn append_form_encoded(body: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b' ' => body.push('+'),
            b'*' | b'-' | b'.' | b'_' => body.push(char::from(byte)),
            _ if byte.is_ascii_alphanumeric() => body.push(char::from(byte)),
            _ => push_escape(body, byte),
        }
    }
}

/// `%XX` of `byte`. Always inlined: [`encode`] is linked into every component, where an
/// out-of-line call costs bytes against the 400 KB size budget.
#[inline(always)]
fn push_escape(out: &mut String, byte: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0f)]));
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Form-decodes one name or value; `None` for a broken escape or invalid UTF-8.
fn decode(raw: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = hex_digit(input.next()?)?;
                let low = hex_digit(input.next()?)?;
                bytes.push(high << 4 | low);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx-rtmp's on_publish body, as its `ngx_rtmp_notify` module writes it.
    const PUBLISH_BODY: &str = "app=app&flashver=FMLE%2F3.0%20%28compatible%3B%20FMSc%2F1.0%29\
        &swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Fapp&pageurl=&addr=127.0.0.1\
        &clientid=1&call=publish&name=J42ninLbjl2E2V8ePqy7&type=live";

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            field(PUBLISH_BODY, "name").as_deref(),
            Some("J42ninLbjl2E2V8ePqy7")
        );
        assert_eq!(field(PUBLISH_BODY, "call").as_deref(), Some("publish"));
        assert_eq!(
            field(PUBLISH_BODY, "flashver").as_deref(),
            Some("FMLE/3.0 (compatible; FMSc/1.0)")
        );
        assert_eq!(field(PUBLISH_BODY, "swfurl").as_deref(), Some(""));
        assert_eq!(field(PUBLISH_BODY, "missing"), None);
    }

    #[test]
    fn query_values_keep_base64_intact_when_escaped() {
        // The seed 000 token `+qKkQJf9m6kfGzu6y49ij3H9oXk=` escaped as in a rewritten playlist.
        let query = "s=%2BqKkQJf9m6kfGzu6y49ij3H9oXk%3D";
        assert_eq!(
            field(query, "s").as_deref(),
            Some("+qKkQJf9m6kfGzu6y49ij3H9oXk=")
        );
        // Unescaped, a form decoder turns '+' into ' ' (session_token::verify undoes that).
        assert_eq!(field("s=+q=", "s").as_deref(), Some(" q="));
    }

    #[test]
    fn first_occurrence_wins_and_broken_values_are_absent() {
        assert_eq!(field("token=a&token=b", "token").as_deref(), Some("a"));
        assert_eq!(field("flag&x=1", "flag").as_deref(), Some(""));
        assert_eq!(field("token=%zz", "token"), None);
        assert_eq!(field("token=%4", "token"), None);
        assert_eq!(field("token=%ff", "token"), None);
        assert_eq!(field("", "token"), None);
        assert_eq!(field("t%6Fken=x", "token").as_deref(), Some("x"));
    }

    #[test]
    fn cookies_are_found_verbatim() {
        let header = "csrftoken=abc; sessionid=hx9k2%3D; theme=\"dark\"";
        assert_eq!(cookie(header, "sessionid"), Some("hx9k2%3D"));
        assert_eq!(cookie(header, "theme"), Some("dark"));
        assert_eq!(cookie(header, "csrftoken"), Some("abc"));
        assert_eq!(cookie(header, "session"), None);
        assert_eq!(cookie("", "sessionid"), None);
    }

    /// Expected body by node's `new URLSearchParams([["a b", "x+y&z=1/~*é"], ["empty", ""]])
    /// .toString()`, the WHATWG serializer itself (python's `urlencode` keeps `~`, escapes `*`).
    #[test]
    fn form_pairs_are_escaped_like_an_html_form() {
        let mut body = String::new();
        append_pair(&mut body, "a b", "x+y&z=1/~*é");
        append_pair(&mut body, "empty", "");
        assert_eq!(body, "a+b=x%2By%26z%3D1%2F%7E*%C3%A9&empty=");
        assert_eq!(field(&body, "a b").as_deref(), Some("x+y&z=1/~*é"));
    }

    #[test]
    fn encode_escapes_everything_but_unreserved() {
        assert_eq!(encode("a-Z_0.~"), "a-Z_0.~");
        // Hand-escaped: '+' 2B, '/' 2F, '=' 3D, ' ' 20, 'é' C3 A9.
        assert_eq!(encode("+/= é"), "%2B%2F%3D%20%C3%A9");
        assert_eq!(
            field(&format!("v={}", encode("+/= é&x")), "v").as_deref(),
            Some("+/= é&x")
        );
    }
}
