//! A minimal HLS viewer: just enough of RFC 8216 to follow what a player follows.

use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use anyhow::{Context, bail};

/// One media segment of a playlist, with the key that applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The segment URI as written in the playlist.
    pub uri: String,
    /// `#EXTINF` duration in seconds.
    pub duration: f64,
    /// The `URI` of the `#EXT-X-KEY` in force, if any.
    pub key_uri: Option<String>,
    /// The explicit `IV` of that key tag, if any.
    pub iv: Option<[u8; 16]>,
}

/// What a viewer needs from a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// `#EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `#EXT-X-TARGETDURATION`.
    pub target_duration: u64,
    /// Segments in order.
    pub segments: Vec<Segment>,
    /// Whether `#EXT-X-ENDLIST` is present.
    pub ended: bool,
    /// How many `#EXT-X-DISCONTINUITY` tags are present.
    pub discontinuities: usize,
}

/// Parses a media playlist the way a player does: a key tag applies to every following segment.
pub fn parse(text: &str) -> anyhow::Result<MediaPlaylist> {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("#EXTM3U") {
        bail!("playlist does not start with #EXTM3U");
    }
    let mut playlist = MediaPlaylist {
        media_sequence: 0,
        target_duration: 0,
        segments: Vec::new(),
        ended: false,
        discontinuities: 0,
    };
    let (mut key_uri, mut iv, mut duration) = (None, None, None);
    for line in lines.map(str::trim_end).filter(|line| !line.is_empty()) {
        if let Some(value) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = value.parse().context("media sequence")?;
        } else if let Some(value) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration = value.parse().context("target duration")?;
        } else if let Some(attributes) = line.strip_prefix("#EXT-X-KEY:") {
            key_uri = attribute(attributes, "URI").map(|uri| uri.trim_matches('"').to_owned());
            iv = attribute(attributes, "IV").map(parse_iv).transpose()?;
        } else if let Some(value) = line.strip_prefix("#EXTINF:") {
            let seconds = value.split(',').next().unwrap_or_default();
            duration = Some(seconds.parse().context("EXTINF duration")?);
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if line == "#EXT-X-DISCONTINUITY" {
            playlist.discontinuities += 1;
        } else if !line.starts_with('#') {
            let duration = duration.take().context("segment URI without #EXTINF")?;
            playlist.segments.push(Segment {
                uri: line.to_owned(),
                duration,
                key_uri: key_uri.clone(),
                iv,
            });
        }
    }
    Ok(playlist)
}

/// Finds `NAME=value` in an attribute list, honouring quoted strings that contain commas.
fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attributes;
    while !rest.is_empty() {
        let (key, after_key) = rest.split_once('=')?;
        let (value, after_value) = if let Some(quoted) = after_key.strip_prefix('"') {
            let end = quoted.find('"')? + 2;
            (&after_key[..end], &after_key[end..])
        } else {
            after_key.split_at(after_key.find(',').unwrap_or(after_key.len()))
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = after_value.strip_prefix(',').unwrap_or(after_value);
    }
    None
}

fn parse_iv(text: &str) -> anyhow::Result<[u8; 16]> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .context("IV without 0x")?;
    let bytes = hex::decode(digits).context("IV is not hex")?;
    bytes.try_into().ok().context("IV is not 16 bytes")
}

/// AES-128-CBC + PKCS7 decryption of one segment (RFC 8216 §4.3.2.4).
pub fn decrypt(key: &[u8], iv: &[u8; 16], ciphertext: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key: [u8; 16] = key.try_into().ok().context("key is not 16 bytes")?;
    cbc::Decryptor::<aes::Aes128>::new(&key.into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .ok()
        .context("segment does not decrypt (wrong key, IV or padding)")
}

/// Resolves a playlist URI against the playlist's URL, as a player does (RFC 3986; the
/// playlist's query string is not inherited).
pub fn resolve(playlist_url: &str, uri: &str) -> anyhow::Result<String> {
    let base = reqwest::Url::parse(playlist_url).context("playlist URL")?;
    Ok(base.join(uri).context("relative URI")?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_tag_applies_to_following_segments() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/a/7.key?t=1,2\",IV=0x000102030405060708090a0b0c0d0e0f\n\
            #EXTINF:4.000,\n7.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:3.500,\n8.ts\n#EXT-X-ENDLIST\n";
        let playlist = parse(text).expect("valid playlist");
        assert_eq!(playlist.media_sequence, 7);
        assert_eq!(playlist.target_duration, 4);
        assert!(playlist.ended);
        assert_eq!(playlist.discontinuities, 1);
        assert_eq!(playlist.segments.len(), 2);
        assert_eq!(playlist.segments[1].uri, "8.ts");
        assert_eq!(playlist.segments[1].duration, 3.5);
        assert_eq!(
            playlist.segments[1].key_uri.as_deref(),
            Some("/keys/a/7.key?t=1,2")
        );
        let iv: Vec<u8> = (0..16).collect();
        assert_eq!(playlist.segments[0].iv.map(|iv| iv.to_vec()), Some(iv));
    }

    #[test]
    fn relative_uris_drop_the_playlist_query() {
        let url = "http://127.0.0.1:3000/live/a/index.m3u8?token=x";
        assert_eq!(
            resolve(url, "9.ts").expect("resolves"),
            "http://127.0.0.1:3000/live/a/9.ts"
        );
        assert_eq!(
            resolve(url, "/keys/a/9.key?t=1").expect("resolves"),
            "http://127.0.0.1:3000/keys/a/9.key?t=1"
        );
    }
}
