//! A viewer that plays like an HLS player: fetch the signed playlist, follow every key URI
//! (resolved against the playlist URL, which drops its query), fetch every segment, decrypt,
//! concatenate, and let ffprobe judge the result.

use std::collections::HashMap;

use anyhow::{Context, bail, ensure};

use crate::ffmpeg::{self, Probe};
use crate::hls::{self, MediaPlaylist};

/// One HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url`, with `Cookie: sessionid=<session_cookie>` when given.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    session_cookie: Option<&str>,
) -> anyhow::Result<Answer> {
    let mut request = client.get(url);
    if let Some(cookie) = session_cookie {
        request = request.header(reqwest::header::COOKIE, format!("sessionid={cookie}"));
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    Ok(Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.context("response body")?.to_vec(),
    })
}

/// Asserts a refusal: 403 with an empty body (a refusal must not say why).
pub async fn assert_refused(
    client: &reqwest::Client,
    url: &str,
    session_cookie: Option<&str>,
    what: &str,
) -> anyhow::Result<()> {
    let answer = get(client, url, session_cookie).await?;
    ensure!(
        answer.status == 403,
        "{what}: expected 403, got {} ({})",
        answer.status,
        answer.text()
    );
    ensure!(answer.body.is_empty(), "{what}: 403 with a body");
    Ok(())
}

/// Fetches the playlist at `playlist_url` and returns the absolute URL of its first key.
pub async fn first_key_url(
    client: &reqwest::Client,
    playlist_url: &str,
    session_cookie: Option<&str>,
) -> anyhow::Result<String> {
    let answer = get(client, playlist_url, session_cookie).await?;
    ensure!(answer.status == 200, "playlist answered {}", answer.status);
    let playlist = hls::parse(&answer.text())?;
    let key_uri = playlist
        .segments
        .first()
        .and_then(|segment| segment.key_uri.as_deref())
        .context("no key URI")?;
    hls::resolve(playlist_url, key_uri)
}

/// Everything a viewer fetched for one playlist.
#[derive(Debug, Clone)]
pub struct Playback {
    /// The playlist text as served.
    pub playlist_text: String,
    /// The parsed playlist.
    pub playlist: MediaPlaylist,
    /// Absolute key URLs, in order of first use.
    pub key_urls: Vec<String>,
    /// Absolute segment URLs, in playlist order.
    pub segment_urls: Vec<String>,
    /// The decrypted segments, concatenated.
    pub media: Vec<u8>,
}

impl Playback {
    /// Sum of the `#EXTINF` durations.
    pub fn listed_seconds(&self) -> f64 {
        self.playlist.segments.iter().map(|s| s.duration).sum()
    }
}

/// Fetches the playlist at `playlist_url` and, as a player does, every key and segment it
/// names; fails on any non-200 answer, a key that is not 16 bytes, or a segment that does not
/// decrypt.
pub async fn play(
    client: &reqwest::Client,
    playlist_url: &str,
    session_cookie: Option<&str>,
) -> anyhow::Result<Playback> {
    let answer = get(client, playlist_url, session_cookie).await?;
    ensure!(
        answer.status == 200,
        "playlist answered {}: {}",
        answer.status,
        answer.text()
    );
    let playlist_text = String::from_utf8(answer.body).context("playlist is not UTF-8")?;
    let playlist = hls::parse(&playlist_text)?;
    ensure!(!playlist.segments.is_empty(), "playlist lists no segment");
    let mut keys: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut key_urls, mut segment_urls, mut media) = (Vec::new(), Vec::new(), Vec::new());
    for (index, segment) in playlist.segments.iter().enumerate() {
        let key_uri = segment
            .key_uri
            .as_deref()
            .context("segment without a key: the stream is not encrypted")?;
        let key_url = hls::resolve(playlist_url, key_uri)?;
        if !keys.contains_key(&key_url) {
            let key = get(client, &key_url, session_cookie).await?;
            ensure!(key.status == 200, "key {key_url} answered {}", key.status);
            ensure!(key.body.len() == 16, "key of {} bytes", key.body.len());
            keys.insert(key_url.clone(), key.body);
            key_urls.push(key_url.clone());
        }
        let segment_url = hls::resolve(playlist_url, &segment.uri)?;
        let encrypted = get(client, &segment_url, session_cookie).await?;
        ensure!(
            encrypted.status == 200,
            "segment {segment_url} answered {}",
            encrypted.status
        );
        let iv = segment.iv.unwrap_or_else(|| {
            // RFC 8216 §5.2: without IV, the media sequence number as a big-endian 128-bit int.
            let sequence = playlist.media_sequence + index as u64;
            u128::from(sequence).to_be_bytes()
        });
        let key = keys.get(&key_url).context("key just stored")?;
        media.extend(hls::decrypt(key, &iv, &encrypted.body)?);
        segment_urls.push(segment_url);
    }
    Ok(Playback {
        playlist_text,
        playlist,
        key_urls,
        segment_urls,
        media,
    })
}

/// Checks with ffprobe that the decrypted media is H.264 + AAC lasting about as long as the
/// playlist says (within a second plus 10 %).
pub async fn assert_playable(playback: &Playback) -> anyhow::Result<Probe> {
    let probe = ffmpeg::probe(&playback.media).await?;
    for codec in ["h264", "aac"] {
        if !probe.codecs.iter().any(|found| found == codec) {
            bail!("no {codec} stream in {:?}", probe.codecs);
        }
    }
    let listed = playback.listed_seconds();
    ensure!(
        (probe.duration - listed).abs() <= 1.0 + listed * 0.1,
        "media lasts {:.2} s, the playlist lists {listed:.2} s",
        probe.duration
    );
    Ok(probe)
}

/// The value of query parameter `name` in `url`, decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Sends `head` (request line and headers, without the final blank line), then `body`, over a
/// fresh TCP connection to `http_base` exactly as written, bypassing any client-side URL
/// normalisation, and returns the response status; `None` when the server closed without
/// answering.
pub async fn raw_status(http_base: &str, head: &str, body: &str) -> anyhow::Result<Option<u16>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = http_base
        .strip_prefix("http://")
        .context("http_base is not http://")?;
    let mut connection = tokio::net::TcpStream::connect(addr).await?;
    connection
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n{body}").as_bytes())
        .await?;
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        connection.read_to_end(&mut response),
    )
    .await;
    // A reset or a stall after a partial answer still leaves the status line readable.
    if !matches!(read, Ok(Ok(_))) && response.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Ok(status)
}
