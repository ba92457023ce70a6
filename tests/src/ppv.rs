//! Pay-per-view test support: a real WMSPanel-style PPV handler (docs/PROTOCOLS.md §5) on `127.0.0.1:0` that checks `Signature` with python3's
//! `hashlib` (not gatecast's code) and answers a configurable deny list and `Solution`; and a
//! paying viewer's side (keys of a playlist, balance, credit).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::hls;
use crate::stack::{TestStack, python};
use crate::viewer::{self, Answer};

/// Header naming why pay-per-view refused a key.
pub const REASON: &str = "x-gatecast-reason";

/// What the handler answers and what it has seen.
#[derive(Debug, Default)]
pub struct HandlerState {
    /// The `DenyList.ID` it answers.
    pub deny: Vec<String>,
    /// Answer a `Solution` computed with another token.
    pub wrong_solution: bool,
    /// Answer 500 (a handler that is down).
    pub down: bool,
    /// Read the request and never answer (a hung handler).
    pub hung: bool,
    /// Every request body received, parsed.
    pub requests: Vec<Value>,
    /// Whether python found each request's `Signature` right.
    pub signatures_ok: Vec<bool>,
}

/// A running WMSPanel-style handler.
pub struct Handler {
    /// Its address.
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<Mutex<HandlerState>>,
}

/// Starts a stack with 6 s key periods whose edge syncs with `handler` every `interval` seconds,
/// holding `token` as its `ppv_token` (none when empty); `extra` adds or overrides variables.
pub async fn stack_syncing_with(
    handler: &Handler,
    token: &str,
    interval: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<TestStack> {
    let origin = format!("http://{}", handler.addr);
    let mut variables = vec![
        ("key_period_seconds", "6"),
        ("ppv_handler_origin", origin.as_str()),
        ("ppv_handler_path", "/ppv"),
        ("ppv_sync_interval_seconds", interval),
    ];
    if !token.is_empty() {
        variables.push(("ppv_token", token));
    }
    variables.extend_from_slice(extra);
    TestStack::start_with(&variables).await
}

/// `base64(md5(text))` by python3.
async fn b64_md5(text: &str) -> anyhow::Result<String> {
    python(
        "import base64,hashlib,sys\nprint(base64.b64encode(hashlib.md5(sys.argv[1].encode()).digest()).decode())",
        &[text],
    )
    .await
}

impl Handler {
    /// Listens on `127.0.0.1:0`; `token` is the mutual-authorization token.
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(HandlerState::default()));
        let shared = Arc::clone(&state);
        let token = token.to_owned();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                let token = token.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve(&mut socket, &state, &token).await {
                        eprintln!("ppv handler: {error:#}");
                    }
                });
            }
        });
        Ok(Self { addr, state })
    }

    /// Sets the deny list and whether the `Solution` is wrong.
    pub fn answer(&self, deny: &[&str], wrong_solution: bool) {
        let mut state = self.state.lock().expect("handler state");
        state.deny = deny.iter().map(|id| (*id).to_owned()).collect();
        state.wrong_solution = wrong_solution;
    }

    /// Makes the handler answer 500 (`true`) or work again.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("handler state").down = down;
    }

    /// Makes the handler hang (`true`: read each request, never answer) or work again.
    pub fn set_hung(&self, hung: bool) {
        self.state.lock().expect("handler state").hung = hung;
    }

    /// Number of sync requests received so far.
    pub fn received(&self) -> usize {
        self.state.lock().expect("handler state").requests.len()
    }
}

async fn serve(
    socket: &mut tokio::net::TcpStream,
    state: &Mutex<HandlerState>,
    token: &str,
) -> anyhow::Result<()> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let read = socket.read(&mut chunk).await?;
        ensure!(read > 0, "connection closed before the body");
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buffer.len() < head_end + length {
        let read = socket.read(&mut chunk).await?;
        ensure!(read > 0, "connection closed in the body");
        buffer.extend_from_slice(&chunk[..read]);
    }
    let request: Value = serde_json::from_slice(&buffer[head_end..head_end + length])?;
    let id = request["ID"].as_str().unwrap_or_default();
    let puzzle = request["Puzzle"].as_str().unwrap_or_default().to_owned();
    let expected = b64_md5(&format!("{id}{puzzle}{token}")).await?;
    let signature_ok = request["Signature"].as_str() == Some(expected.as_str());
    let (deny, wrong, down, hung) = {
        let state = state.lock().expect("handler state");
        (
            state.deny.clone(),
            state.wrong_solution,
            state.down,
            state.hung,
        )
    };
    if hung {
        // Longer than any sync may wait; the connection stays open and silent.
        tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        return Ok(());
    }
    let solution_token = if wrong { "not-the-token" } else { token };
    let solution = b64_md5(&format!("{puzzle}{solution_token}")).await?;
    let body = serde_json::json!({ "DenyList": { "ID": deny }, "Solution": solution }).to_string();
    {
        let mut state = state.lock().expect("handler state");
        state.requests.push(request);
        state.signatures_ok.push(signature_ok);
    }
    let status = match (down, signature_ok) {
        (true, _) => "500 Internal Server Error",
        (false, true) => "200 OK",
        (false, false) => "403 Forbidden",
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await?;
    Ok(())
}

/// Every `Player` entry of the received sync requests, as (stream, id, delta).
pub fn players(requests: &[Value]) -> Vec<(String, String, u64)> {
    let mut found = Vec::new();
    for request in requests {
        let vhosts = request["PayPerViewInfo"]["VHost"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for vhost in vhosts {
            for app in vhost["Application"].as_array().cloned().unwrap_or_default() {
                for instance in app["Instance"].as_array().cloned().unwrap_or_default() {
                    for stream in instance["Stream"].as_array().cloned().unwrap_or_default() {
                        for player in stream["Player"].as_array().cloned().unwrap_or_default() {
                            found.push((
                                stream["name"].as_str().unwrap_or_default().to_owned(),
                                player["id"].as_str().unwrap_or_default().to_owned(),
                                player["delta"].as_u64().unwrap_or(0),
                            ));
                        }
                    }
                }
            }
        }
    }
    found
}

/// One key of a viewer's playlist: its URL and a segment (URL, IV) it decrypts.
pub struct KeyedSegment {
    /// Absolute key URL, with the viewer's key token.
    pub key_url: String,
    /// Absolute URL of the first segment under this key.
    pub segment_url: String,
    /// That segment's IV.
    pub iv: [u8; 16],
}

/// The first segment under each distinct key of `stream`'s playlist signed for
/// `viewer`/`session`.
pub async fn keys_for(
    stack: &TestStack,
    stream: &str,
    viewer: &str,
    session: &str,
) -> anyhow::Result<Vec<KeyedSegment>> {
    let (status, signed) = stack
        .api(
            Method::POST,
            "/api/sign",
            Some(json!({"stream": stream, "viewer": viewer, "session": session, "ttl": 600})),
        )
        .await?;
    ensure!(status == 200, "sign answered {status}");
    let playlist_url = stack.url(signed["url"].as_str().context("url")?);
    let answer = viewer::get(&stack.client, &playlist_url, None).await?;
    ensure!(answer.status == 200, "playlist answered {}", answer.status);
    let playlist = hls::parse(&answer.text())?;
    let mut keys: Vec<KeyedSegment> = Vec::new();
    for segment in &playlist.segments {
        let key_url = hls::resolve(&playlist_url, segment.key_uri.as_deref().context("key")?)?;
        if keys.iter().all(|known| known.key_url != key_url) {
            keys.push(KeyedSegment {
                key_url,
                segment_url: hls::resolve(&playlist_url, &segment.uri)?,
                iv: segment.iv.context("explicit IV")?,
            });
        }
    }
    Ok(keys)
}

/// `GET url` without a cookie.
pub async fn get(stack: &TestStack, url: &str) -> anyhow::Result<Answer> {
    viewer::get(&stack.client, url, None).await
}

/// Fetches the key and checks it decrypts its segment into MPEG-TS (sync byte 0x47 every
/// 188 bytes).
pub async fn assert_key_decrypts(stack: &TestStack, keyed: &KeyedSegment) -> anyhow::Result<()> {
    let key = get(stack, &keyed.key_url).await?;
    ensure!(
        key.status == 200,
        "key answered {} ({:?})",
        key.status,
        key.headers.get(REASON)
    );
    ensure!(key.body.len() == 16, "key of {} bytes", key.body.len());
    let segment = get(stack, &keyed.segment_url).await?;
    ensure!(segment.status == 200, "segment answered {}", segment.status);
    let clear = hls::decrypt(&key.body, &keyed.iv, &segment.body)?;
    ensure!(
        !clear.is_empty() && clear.chunks(188).all(|packet| packet[0] == 0x47),
        "the key does not decrypt its segment to MPEG-TS"
    );
    Ok(())
}

/// Asserts a 403 whose `X-Gatecast-Reason` is `reason`.
pub async fn assert_refused_for(stack: &TestStack, url: &str, reason: &str) -> anyhow::Result<()> {
    let answer = get(stack, url).await?;
    ensure!(
        answer.status == 403,
        "expected 403 {reason}, got {}",
        answer.status
    );
    let given = answer.headers.get(REASON).and_then(|v| v.to_str().ok());
    ensure!(
        given == Some(reason),
        "expected reason {reason}, got {given:?}"
    );
    Ok(())
}

/// A viewer's credits, through the management API.
pub async fn balance(stack: &TestStack, viewer: &str) -> anyhow::Result<i64> {
    let (status, body) = stack
        .api(
            Method::GET,
            &format!("/api/ppv/viewers/{viewer}/balance"),
            None,
        )
        .await?;
    ensure!(status == 200, "balance answered {status}");
    body["balance"].as_i64().context("balance")
}

/// Credits a viewer through the management API.
pub async fn credit(stack: &TestStack, viewer: &str, credits: u32) -> anyhow::Result<()> {
    let (status, _) = stack
        .api(
            Method::POST,
            &format!("/api/ppv/viewers/{viewer}/credit"),
            Some(json!({ "credits": credits })),
        )
        .await?;
    ensure!(status == 200, "credit answered {status}");
    Ok(())
}

/// The key id of a key URL (`…/<key id>.key?t=…`).
pub fn key_id(key_url: &str) -> anyhow::Result<u64> {
    let path = key_url.split('?').next().unwrap_or_default();
    let file = path.rsplit('/').next().unwrap_or_default();
    file.trim_end_matches(".key").parse().context("key id")
}

/// Prices `stream` `key:1`, starts a 40 s broadcast and returns once v-pay's playlist lists
/// 3 keys (7+ segments of 2 s at 3 per key).
pub async fn paid_broadcast(
    stack: &TestStack,
    stream: &str,
) -> anyhow::Result<(tokio::process::Child, Vec<KeyedSegment>)> {
    let (status, _) = stack
        .api(
            Method::POST,
            &format!("/api/ppv/prices/{stream}"),
            Some(json!({"price": "key:1"})),
        )
        .await?;
    ensure!(status == 204, "set price answered {status}");

    // Enough broadcast for 3 keys (7+ segments of 2 s at 3 per key).
    let stream_key = {
        let (status, created) = stack
            .api(
                Method::POST,
                "/api/channels",
                Some(json!({ "name": stream })),
            )
            .await?;
        ensure!(status == 201, "channel answered {status}");
        created["stream_key"]
            .as_str()
            .context("stream_key")?
            .to_owned()
    };
    let ffmpeg = crate::ffmpeg::publish(&stack.stack.publish_url(&stream_key), 40)?;
    let mut keys = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(found) = keys_for(stack, stream, "v-pay", "s-pay").await
            && found.len() >= 3
        {
            keys = found;
            break;
        }
    }
    ensure!(keys.len() >= 3, "the broadcast never listed 3 keys");

    Ok((ffmpeg, keys))
}
