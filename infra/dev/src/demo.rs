//! The demo channel the launcher sets up on first start, through the same management API a
//! site backend uses, and the `dev.json` that tells a newcomer (or a script) how to use it.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::stack::Stack;

/// Name of the channel created on first start.
pub const DEMO_STREAM: &str = "demo";
/// How long the printed playback URL stays valid.
const PLAYBACK_TTL_SECONDS: u64 = 24 * 60 * 60;

/// What `<data>/dev.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevInfo {
    /// `rtmp://…/live/<stream key>`: paste into OBS or ffmpeg.
    pub rtmp_publish_url: String,
    /// Base URL of the edge functions.
    pub http_base: String,
    /// The public stream name.
    pub stream: String,
    /// Bearer token of the management API.
    pub api_token: String,
    /// A signed playlist URL, valid for a day.
    pub playback_url: String,
}

#[derive(Deserialize)]
struct ChannelCreated {
    stream_key: String,
}

#[derive(Deserialize)]
struct Signed {
    url: String,
}

/// Ensures the demo channel exists (creating it, or rotating its key when the previous key was
/// lost with `dev.json`), signs a fresh playback URL and writes `<data>/dev.json`.
pub async fn prepare(stack: &Stack, data_dir: &Path) -> anyhow::Result<DevInfo> {
    let client = reqwest::Client::new();
    let dev_json = data_dir.join("dev.json");
    let known_key = std::fs::read(&dev_json)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<DevInfo>(&bytes).ok())
        .and_then(|info| info.rtmp_publish_url.rsplit('/').next().map(str::to_owned));
    let stream_key = match known_key {
        Some(key) => key,
        None => create_or_rotate(&client, stack).await?,
    };
    let signed: Signed = api(&client, stack, "/api/sign")
        .json(&serde_json::json!({
            "stream": DEMO_STREAM,
            "viewer": "dev-viewer",
            "session": "dev-session",
            "ttl": PLAYBACK_TTL_SECONDS,
        }))
        .send()
        .await?
        .error_for_status()
        .context("/api/sign refused")?
        .json()
        .await?;
    let info = DevInfo {
        rtmp_publish_url: stack.publish_url(&stream_key),
        http_base: stack.http_base.clone(),
        stream: DEMO_STREAM.to_owned(),
        api_token: stack.secrets.api_token.clone(),
        playback_url: format!("{}{}", stack.http_base, signed.url),
    };
    // dev.json holds the demo's stream key and the API token: owner only.
    crate::stack::write_private(&dev_json, &serde_json::to_vec_pretty(&info)?)?;
    Ok(info)
}

async fn create_or_rotate(client: &reqwest::Client, stack: &Stack) -> anyhow::Result<String> {
    let created = api(client, stack, "/api/channels")
        .json(&serde_json::json!({ "name": DEMO_STREAM }))
        .send()
        .await
        .context("management API unreachable")?;
    let response = match created.status() {
        reqwest::StatusCode::CREATED => created,
        reqwest::StatusCode::CONFLICT => {
            api(
                client,
                stack,
                &format!("/api/channels/{DEMO_STREAM}/rotate"),
            )
            .send()
            .await?
        }
        status => bail!("creating the demo channel failed with {status}"),
    };
    let channel: ChannelCreated = response
        .error_for_status()
        .context("channel API refused")?
        .json()
        .await?;
    Ok(channel.stream_key)
}

fn api(client: &reqwest::Client, stack: &Stack, path: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{}{path}", stack.http_base))
        .bearer_auth(&stack.secrets.api_token)
}
