//! Playlist rewriting: append a viewer's token query to the URIs a player will fetch next.
//!
//! Relative URIs resolve against the playlist URL and drop its query string
//! (docs/PROTOCOLS.md §2), so a token on the playlist URL never reaches the key or segment requests: it has to be
//! written into each URI. This module does that, line by line, and keeps every other byte as it
//! was (line endings, comments, unknown tags, attribute order), because players differ in what
//! they tolerate and a rewrite must never be the reason a stream stops playing.
//!
//! What gets which query (key and segment credentials differ: a viewer token opens one kind of
//! object, see [`crate::viewer_token::Scope`]):
//! - when [`RewriteOptions::key_query`] is set, that query: the `URI` attribute of
//!   `#EXT-X-KEY` and `#EXT-X-SESSION-KEY` (the key function checks it; [`key_uris`] lists
//!   those URIs, so the key token can be limited to the keys this playlist names);
//! - when [`RewriteOptions::segment_query`] is set, that query: every URI line, and the `URI`
//!   attribute of `#EXT-X-MAP`, `#EXT-X-PART` and `#EXT-X-PRELOAD-HINT` (LL-HLS).
//!
//! Left alone: `data:` URIs (a query would corrupt them), empty URIs, tags without `URI`
//! (`METHOD=NONE`), and every other tag (e.g. `#EXT-X-RENDITION-REPORT`, whose URI is another
//! playlist that needs its own signed URL, not a key token).

/// Why a playlist could not be rewritten. A stored playlist that does not parse is a server
/// fault (the ingest worker wrote it), so [`crate::status`] maps this to 500, never to the viewer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// A token query is empty, starts with `?`/`&`, or holds a byte that would break a
    /// quoted attribute or a URI line (`"`, `#`, whitespace, control characters).
    #[error("token query cannot be placed in a playlist URI")]
    InvalidTokenQuery,
    /// A rewritten tag's attribute list does not parse (RFC 8216 §4.2).
    #[error("line {line}: malformed attribute list: {reason}")]
    MalformedAttributes {
        /// 1-based line number in the playlist.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// What to append and where. Each query is one or more `name=value` pairs joined by `&`,
/// already percent-encoded, without `?`, e.g. `t=v2.k2.AAAA.BBBB` or
/// [`crate::session_token::query_pair`]'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteOptions<'a> {
    /// Appended to key URIs; `None` leaves them alone (a playlist that names no key of its
    /// stream gets no key credential).
    pub key_query: Option<&'a str>,
    /// Appended to segment, init-section, part and preload-hint URIs when set (for
    /// deployments that check a credential on segments); `None` leaves them alone.
    pub segment_query: Option<&'a str>,
}

/// Tags whose `URI` attribute always gets the token.
const KEY_TAGS: [&str; 2] = ["#EXT-X-KEY:", "#EXT-X-SESSION-KEY:"];
/// Tags whose `URI` attribute gets the token when segments are signed.
const SEGMENT_TAGS: [&str; 3] = ["#EXT-X-MAP:", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:"];

/// Rewrites `playlist` per `options`. Output differs from input only by the inserted queries.
pub fn rewrite_playlist(
    playlist: &str,
    options: &RewriteOptions<'_>,
) -> Result<String, RewriteError> {
    for query in [options.key_query, options.segment_query]
        .into_iter()
        .flatten()
    {
        validate_token_query(query)?;
    }
    let longest_query = options
        .key_query
        .map_or(0, str::len)
        .max(options.segment_query.map_or(0, str::len));
    let mut out = String::with_capacity(playlist.len() + 32 * (longest_query + 1));
    for (index, chunk) in playlist.split_inclusive('\n').enumerate() {
        let body_len = chunk.len() - line_ending_len(chunk);
        let (body, ending) = chunk.split_at(body_len);
        rewrite_line(body, index + 1, options, &mut out)?;
        out.push_str(ending);
    }
    Ok(out)
}

/// The `URI` values of the key tags (`#EXT-X-KEY`, `#EXT-X-SESSION-KEY`) of `playlist`, in
/// order: the URIs [`rewrite_playlist`] appends [`RewriteOptions::key_query`] to (plus `data:`
/// and empty ones, which it leaves alone and which name no key object). Tags without
/// a URI, or whose attribute list does not parse (the rewrite then fails), yield nothing.
pub fn key_uris(playlist: &str) -> impl Iterator<Item = &str> {
    playlist.lines().filter_map(|line| {
        let tag = KEY_TAGS.iter().find(|tag| line.starts_with(*tag))?;
        let attributes = &line[tag.len()..];
        let (start, end) = uri_range(attributes).ok()??;
        Some(&attributes[start..end])
    })
}

/// `uri` with `query` appended: `?query` when it has no query yet, `&query` when it has one,
/// nothing extra when it already ends in `?` or `&`; a `#fragment` stays last.
pub fn append_query(uri: &str, query: &str) -> String {
    let mut out = String::with_capacity(uri.len() + query.len() + 1);
    push_with_query(&mut out, uri, query);
    out
}

fn push_with_query(out: &mut String, uri: &str, query: &str) {
    let (base, fragment) = uri.split_at(uri.find('#').unwrap_or(uri.len()));
    out.push_str(base);
    if !base.contains('?') {
        out.push('?');
    } else if !(base.ends_with('?') || base.ends_with('&')) {
        out.push('&');
    }
    out.push_str(query);
    out.push_str(fragment);
}

fn line_ending_len(chunk: &str) -> usize {
    if chunk.ends_with("\r\n") {
        2
    } else if chunk.ends_with('\n') {
        1
    } else {
        0
    }
}

fn rewrite_line(
    body: &str,
    line: usize,
    options: &RewriteOptions<'_>,
    out: &mut String,
) -> Result<(), RewriteError> {
    if body.starts_with('#') {
        let query = if KEY_TAGS.iter().any(|tag| body.starts_with(tag)) {
            options.key_query
        } else {
            options
                .segment_query
                .filter(|_| SEGMENT_TAGS.iter().any(|tag| body.starts_with(tag)))
        };
        let Some(query) = query else {
            out.push_str(body);
            return Ok(());
        };
        // Invariant: every tag in both lists contains ':'.
        let attributes_start = body.find(':').map_or(body.len(), |colon| colon + 1);
        let uri = uri_range(&body[attributes_start..])
            .map_err(|reason| RewriteError::MalformedAttributes { line, reason })?
            .map(|(start, end)| (attributes_start + start, attributes_start + end));
        push_rewritten(out, body, uri, query);
        return Ok(());
    }
    let trimmed = body.trim();
    match options.segment_query {
        Some(query) if !trimmed.is_empty() => {
            let start = body.len() - body.trim_start().len();
            push_rewritten(out, body, Some((start, start + trimmed.len())), query);
        }
        _ => out.push_str(body),
    }
    Ok(())
}

/// Copies `body` to `out`, with `query` appended to the URI at `uri` (a byte range) if any.
fn push_rewritten(out: &mut String, body: &str, uri: Option<(usize, usize)>, query: &str) {
    match uri {
        Some((start, end)) if is_signable(&body[start..end]) => {
            out.push_str(&body[..start]);
            push_with_query(out, &body[start..end], query);
            out.push_str(&body[end..]);
        }
        _ => out.push_str(body),
    }
}

fn is_signable(uri: &str) -> bool {
    !uri.is_empty()
        && !uri
            .get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"))
}

/// Finds the value of the `URI` attribute (between its quotes) in an attribute list.
///
/// Grammar (RFC 8216 §4.2): `NAME=VALUE` pairs separated by commas, a value being a quoted
/// string (no `"` inside, commas allowed) or a run of bytes up to the next comma. Spaces around
/// pairs are tolerated because some packagers write them.
fn uri_range(attributes: &str) -> Result<Option<(usize, usize)>, &'static str> {
    let bytes = attributes.as_bytes();
    let skip_blanks = |mut at: usize| {
        while bytes.get(at).is_some_and(|b| *b == b' ' || *b == b'\t') {
            at += 1;
        }
        at
    };
    let mut at = skip_blanks(0);
    let mut found = None;
    while at < bytes.len() {
        let name_end = attributes[at..]
            .find(['=', ','])
            .map(|offset| at + offset)
            .filter(|end| bytes[*end] == b'=')
            .ok_or("attribute without '='")?;
        let name = attributes[at..name_end].trim_end();
        if name.is_empty() {
            return Err("empty attribute name");
        }
        at = name_end + 1;
        let quoted = bytes.get(at) == Some(&b'"');
        let value = if quoted {
            let start = at + 1;
            let end = attributes[start..]
                .find('"')
                .map(|offset| start + offset)
                .ok_or("unterminated quoted string")?;
            at = end + 1;
            (start, end)
        } else {
            let start = at;
            at = attributes[start..]
                .find(',')
                .map_or(bytes.len(), |offset| start + offset);
            if attributes[start..at].contains('"') {
                return Err("quote inside an unquoted value");
            }
            (start, attributes[start..at].trim_end().len() + start)
        };
        if name == "URI" {
            if !quoted {
                return Err("URI is not a quoted string");
            }
            if found.replace(value).is_some() {
                return Err("more than one URI attribute");
            }
        }
        at = skip_blanks(at);
        match bytes.get(at) {
            None => break,
            Some(b',') => at = skip_blanks(at + 1),
            Some(_) => return Err("expected ',' after a value"),
        }
    }
    Ok(found)
}

fn validate_token_query(query: &str) -> Result<(), RewriteError> {
    let valid = !query.is_empty()
        && !query.starts_with(['?', '&'])
        && query
            .bytes()
            .all(|b| (b.is_ascii_graphic() && b != b'"' && b != b'#') || b >= 0x80);
    if valid {
        Ok(())
    } else {
        Err(RewriteError::InvalidTokenQuery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_TOKEN: &str = "t=v2.k2.AAAA.BBBB";
    const SEGMENT_TOKEN: &str = "t=v2.k2.SSSS.BBBB";

    fn keys_only() -> RewriteOptions<'static> {
        RewriteOptions {
            key_query: Some(KEY_TOKEN),
            segment_query: None,
        }
    }

    fn everything() -> RewriteOptions<'static> {
        RewriteOptions {
            key_query: Some(KEY_TOKEN),
            segment_query: Some(SEGMENT_TOKEN),
        }
    }

    /// nginx-rtmp style (seed 000) with hls_keys on: a key every few segments.
    const NGINX: &str = "#EXTM3U\n\
#EXT-X-VERSION:3\n\
#EXT-X-MEDIA-SEQUENCE:7614\n\
#EXT-X-TARGETDURATION:6\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7614.key\",IV=0x00000000000000000000000000001dbe\n\
#EXTINF:5.950,\n\
1477168823630.ts\n\
#EXTINF:5.950,\n\
1477168829573.ts\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7616.key\",IV=0x00000000000000000000000000001dc0\n\
#EXTINF:5.234,\n\
1477168841472.ts\n";

    #[test]
    fn key_uris_get_the_token_and_nothing_else_changes() {
        let expected = "#EXTM3U\n\
#EXT-X-VERSION:3\n\
#EXT-X-MEDIA-SEQUENCE:7614\n\
#EXT-X-TARGETDURATION:6\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7614.key?t=v2.k2.AAAA.BBBB\",IV=0x00000000000000000000000000001dbe\n\
#EXTINF:5.950,\n\
1477168823630.ts\n\
#EXTINF:5.950,\n\
1477168829573.ts\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7616.key?t=v2.k2.AAAA.BBBB\",IV=0x00000000000000000000000000001dc0\n\
#EXTINF:5.234,\n\
1477168841472.ts\n";
        assert_eq!(
            rewrite_playlist(NGINX, &keys_only()).as_deref(),
            Ok(expected)
        );
    }

    #[test]
    fn segments_are_signed_when_asked_and_crlf_is_kept() {
        let crlf = NGINX.replace('\n', "\r\n");
        let out = rewrite_playlist(&crlf, &everything()).expect("rewrite");
        let expected = "#EXTM3U\r\n\
#EXT-X-VERSION:3\r\n\
#EXT-X-MEDIA-SEQUENCE:7614\r\n\
#EXT-X-TARGETDURATION:6\r\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7614.key?t=v2.k2.AAAA.BBBB\",IV=0x00000000000000000000000000001dbe\r\n\
#EXTINF:5.950,\r\n\
1477168823630.ts?t=v2.k2.SSSS.BBBB\r\n\
#EXTINF:5.950,\r\n\
1477168829573.ts?t=v2.k2.SSSS.BBBB\r\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7616.key?t=v2.k2.AAAA.BBBB\",IV=0x00000000000000000000000000001dc0\r\n\
#EXTINF:5.234,\r\n\
1477168841472.ts?t=v2.k2.SSSS.BBBB\r\n";
        assert_eq!(out, expected);
    }

    /// Shaped after the LL-HLS example of RFC 8216bis (appendix), with an encrypted init section.
    #[test]
    fn low_latency_tags_are_signed() {
        let input = "#EXTM3U\n\
#EXT-X-TARGETDURATION:4\n\
#EXT-X-VERSION:6\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0\n\
#EXT-X-PART-INF:PART-TARGET=0.33334\n\
#EXT-X-MEDIA-SEQUENCE:266\n\
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"https://k.example/keys/a,b.key?x=1#frag\",KEYFORMAT=\"identity\"\n\
#EXT-X-MAP:URI=\"init.mp4\"\n\
#EXTINF:4.00008,\n\
fileSequence266.mp4\n\
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.0.mp4\"\n\
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.1.mp4\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart273.4.mp4\"\n\
\n\
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2\n\
#EXT-X-UNKNOWN-THING:URI=\"keep.me\"\n\
# a comment\n\
https://cdn.example/seg/273.mp4?sig=abc#t=1";
        let expected = "#EXTM3U\n\
#EXT-X-TARGETDURATION:4\n\
#EXT-X-VERSION:6\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0\n\
#EXT-X-PART-INF:PART-TARGET=0.33334\n\
#EXT-X-MEDIA-SEQUENCE:266\n\
#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"https://k.example/keys/a,b.key?x=1&t=v2.k2.AAAA.BBBB#frag\",KEYFORMAT=\"identity\"\n\
#EXT-X-MAP:URI=\"init.mp4?t=v2.k2.SSSS.BBBB\"\n\
#EXTINF:4.00008,\n\
fileSequence266.mp4?t=v2.k2.SSSS.BBBB\n\
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.0.mp4?t=v2.k2.SSSS.BBBB\"\n\
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.1.mp4?t=v2.k2.SSSS.BBBB\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart273.4.mp4?t=v2.k2.SSSS.BBBB\"\n\
\n\
#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2\n\
#EXT-X-UNKNOWN-THING:URI=\"keep.me\"\n\
# a comment\n\
https://cdn.example/seg/273.mp4?sig=abc&t=v2.k2.SSSS.BBBB#t=1";
        assert_eq!(
            rewrite_playlist(input, &everything()).as_deref(),
            Ok(expected)
        );
        // Keys only: just the key line changes.
        let keys = rewrite_playlist(input, &keys_only()).expect("rewrite");
        let changed: Vec<_> = input
            .lines()
            .zip(keys.lines())
            .filter(|(a, b)| a != b)
            .map(|(_, b)| b)
            .collect();
        assert_eq!(
            changed,
            [
                "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"https://k.example/keys/a,b.key?x=1&t=v2.k2.AAAA.BBBB#frag\",KEYFORMAT=\"identity\""
            ]
        );
    }

    #[test]
    fn session_keys_none_method_data_uris_and_whitespace() {
        let input = "#EXTM3U\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k.key?\"\n\
#EXT-X-KEY:METHOD=NONE\n\
#EXT-X-KEY:METHOD=AES-128, URI=\"k2.key?a=1&\" , IV=0x01\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"DATA:text/plain;base64,AAAA\"\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"\"\n\
  seg.ts  \r\n";
        let expected = "#EXTM3U\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k.key?t=1\"\n\
#EXT-X-KEY:METHOD=NONE\n\
#EXT-X-KEY:METHOD=AES-128, URI=\"k2.key?a=1&t=1\" , IV=0x01\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"DATA:text/plain;base64,AAAA\"\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"\"\n\
  seg.ts?s=2  \r\n";
        let options = RewriteOptions {
            key_query: Some("t=1"),
            segment_query: Some("s=2"),
        };
        assert_eq!(rewrite_playlist(input, &options).as_deref(), Ok(expected));
    }

    /// `key_uris` lists exactly the key-tag URIs (the session key's too, quoted commas and
    /// `data:` included, never a segment or `#EXT-X-MAP` URI); without a key query those URIs
    /// stay as they are while segments are still signed.
    #[test]
    fn key_uris_are_listed_and_left_alone_without_a_key_query() {
        let playlist = "#EXTM3U\n\
#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\"\n\
#EXT-X-MAP:URI=\"init.mp4\"\n\
#EXT-X-KEY:METHOD=NONE\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"https://k.example/a,b/8.key?x=1\",IV=0x01\r\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"data:text/plain;base64,AAAA\"\n\
#EXT-X-KEY:URI=\"unterminated\n\
9.ts\n";
        assert_eq!(
            key_uris(playlist).collect::<Vec<_>>(),
            [
                "/keys/benw/7.key",
                "https://k.example/a,b/8.key?x=1",
                "data:text/plain;base64,AAAA"
            ]
        );
        let unsigned_keys = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\"\n9.ts\n";
        let options = RewriteOptions {
            key_query: None,
            segment_query: Some("s=2"),
        };
        assert_eq!(
            rewrite_playlist(unsigned_keys, &options).as_deref(),
            Ok("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/benw/7.key\"\n9.ts?s=2\n")
        );
    }

    #[test]
    fn malformed_attributes_are_typed_errors() {
        for (tag, reason) in [
            (
                "#EXT-X-KEY:METHOD=AES-128,URI=\"/k.key",
                "unterminated quoted string",
            ),
            (
                "#EXT-X-KEY:METHOD=AES-128,URI=/k.key",
                "URI is not a quoted string",
            ),
            (
                "#EXT-X-KEY:METHOD=AES-128,URI=\"a\",URI=\"b\"",
                "more than one URI attribute",
            ),
            ("#EXT-X-KEY:METHOD", "attribute without '='"),
            ("#EXT-X-KEY:METHOD,URI=\"a\"", "attribute without '='"),
            ("#EXT-X-KEY:=AES-128", "empty attribute name"),
            ("#EXT-X-KEY:URI=\"a\"x", "expected ',' after a value"),
            ("#EXT-X-KEY:IV=0x\"1\"", "quote inside an unquoted value"),
        ] {
            let playlist = format!("#EXTM3U\n{tag}\n");
            assert_eq!(
                rewrite_playlist(&playlist, &keys_only()),
                Err(RewriteError::MalformedAttributes { line: 2, reason }),
                "{tag}"
            );
        }
        // Segment tags are only parsed when they are rewritten.
        let part = "#EXT-X-PART:URI=\"x";
        assert!(rewrite_playlist(part, &keys_only()).is_ok());
        assert!(rewrite_playlist(part, &everything()).is_err());
    }

    #[test]
    fn token_queries_are_validated() {
        for bad in ["", "?t=1", "&t=1", "t=\"1", "t=1#x", "t=1 2", "t=1\n"] {
            for options in [
                RewriteOptions {
                    key_query: Some(bad),
                    segment_query: None,
                },
                RewriteOptions {
                    key_query: Some("t=1"),
                    segment_query: Some(bad),
                },
            ] {
                assert_eq!(
                    rewrite_playlist("#EXTM3U\n", &options),
                    Err(RewriteError::InvalidTokenQuery),
                    "{bad:?}"
                );
            }
        }
    }

    #[test]
    fn append_query_handles_existing_queries_and_fragments() {
        for (uri, expected) in [
            ("a.ts", "a.ts?t=1"),
            ("/keys/b/1.key", "/keys/b/1.key?t=1"),
            (
                "https://h.example/a.ts?x=1",
                "https://h.example/a.ts?x=1&t=1",
            ),
            ("a.ts?", "a.ts?t=1"),
            ("a.ts?x=1&", "a.ts?x=1&t=1"),
            ("a.ts#f", "a.ts?t=1#f"),
            ("a.ts?x=1#f?g", "a.ts?x=1&t=1#f?g"),
        ] {
            assert_eq!(append_query(uri, "t=1"), expected);
        }
    }
}
