//! The whole stack for one test: S3, ingest worker and wasm host in a temporary folder, driven
//! through the same management API a site backend uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use gatecast_dev::stack::{MEDIA_BUCKET, Stack, StackConfig};
use serde_json::Value;

use crate::hls::MediaPlaylist;

/// Where the components built by `infra/run-tests.sh` are: `$CARGO_TARGET_DIR`, else the
/// workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// The workspace root (this crate's parent folder).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A running stack in a temporary folder that disappears with it.
pub struct TestStack {
    /// The stack itself (addresses, secrets, storage switch).
    pub stack: Stack,
    /// A plain HTTP client without cookies or redirects.
    pub client: reqwest::Client,
    /// Secrets, S3 objects and KV stores; deleted when the test's stack is dropped.
    _data_dir: tempfile::TempDir,
}

impl TestStack {
    /// Starts a stack with 2 s segments, 3 segments per key, and segment URIs signed (the
    /// tests fetch segments through the edge, as a deployment with a private `live/` does).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// [`TestStack::start`] with extra app variables (`(name, value)`, overriding spin.toml's
    /// defaults).
    pub async fn start_with(variables: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_configured(variables, |_| {}).await
    }

    /// [`TestStack::start_with`], with `configure` adjusting the rest of the stack's
    /// configuration (recording, the worker's update interval) before it starts.
    pub async fn start_configured(
        variables: &[(&str, &str)],
        configure: impl FnOnce(&mut StackConfig),
    ) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("temp dir")?;
        let mut config = StackConfig::ephemeral(data_dir.path(), workspace_dir().join("spin.toml"));
        configure(&mut config);
        config.target_dir = Some(target_dir());
        config
            .variables
            .insert("sign_segments".to_owned(), "true".to_owned());
        for (name, value) in variables {
            config
                .variables
                .insert((*name).to_owned(), (*value).to_owned());
        }
        let stack = Stack::start(config)
            .await
            .context("stack does not start (were the components built? see infra/run-tests.sh)")?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self {
            stack,
            client,
            _data_dir: data_dir,
        })
    }

    /// Absolute URL of an edge path (`/live/...`, `/keys/...`, `/api/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.http_base)
    }

    /// An authenticated API call; returns status and JSON body (`Null` when empty).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.stack.secrets.api_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("API {path}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| format!("{path}: JSON"))?
        };
        Ok((status, json))
    }

    /// `POST <path>` to the management API with the bearer token and an optional JSON body.
    pub async fn api_post(
        &self,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.stack.secrets.api_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.with_context(|| format!("POST {path}"))
    }

    /// Like [`TestStack::api_post`], insisting on a success status.
    pub async fn api_ok(&self, path: &str, body: Option<Value>) -> anyhow::Result<Vec<u8>> {
        let response = self.api_post(path, body).await?;
        let status = response.status();
        let bytes = response.bytes().await?.to_vec();
        if !status.is_success() {
            bail!("POST {path} answered {status}");
        }
        Ok(bytes)
    }

    /// `GET <path>` of the management API with the bearer token; the answer's JSON.
    pub async fn api_get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.stack.secrets.api_token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {path} answered {status}");
        }
        response.json().await.context("API JSON")
    }

    /// Creates channel `name` and returns its secret stream key.
    pub async fn create_channel(&self, name: &str) -> anyhow::Result<String> {
        let body = self
            .api_ok("/api/channels", Some(serde_json::json!({ "name": name })))
            .await?;
        let created: Value = serde_json::from_slice(&body).context("channel JSON")?;
        if created["name"] != name {
            bail!("channel created under another name: {created}");
        }
        created["stream_key"]
            .as_str()
            .map(str::to_owned)
            .context("no stream_key in the answer")
    }

    /// `POST /api/sign` with `request`; returns the absolute playlist URL.
    pub async fn sign(&self, request: Value) -> anyhow::Result<String> {
        let body = self.api_ok("/api/sign", Some(request)).await?;
        let signed: Value = serde_json::from_slice(&body).context("sign JSON")?;
        let url = signed["url"].as_str().context("no url in the answer")?;
        if signed["expires"].as_u64().is_none() {
            bail!("no expires in the sign answer: {signed}");
        }
        Ok(self.url(url))
    }

    /// Signs a gatecast playlist URL for `stream`, `viewer` and `session`, valid 10 minutes.
    pub async fn sign_for(
        &self,
        stream: &str,
        viewer: &str,
        session: &str,
    ) -> anyhow::Result<String> {
        self.sign(serde_json::json!({
            "stream": stream, "viewer": viewer, "session": session, "ttl": 600,
        }))
        .await
    }

    /// Where the stored live playlist of `stream` is on disk (the S3 endpoint's folder).
    pub fn stored_playlist_path(&self, stream: &str) -> PathBuf {
        self.stack
            .s3_root
            .join(MEDIA_BUCKET)
            .join("live")
            .join(stream)
            .join("index.m3u8")
    }

    /// Polls the stored live playlist of `stream` until it lists at least `segments` segments.
    pub async fn wait_for_segments(
        &self,
        stream: &str,
        segments: usize,
        limit: Duration,
    ) -> anyhow::Result<MediaPlaylist> {
        self.wait_for_playlist(stream, limit, |playlist| {
            playlist.segments.len() >= segments
        })
        .await
        .with_context(|| format!("{stream}: fewer than {segments} segments"))
    }

    /// Polls the stored live playlist of `stream` until the worker has ended it
    /// (`#EXT-X-ENDLIST`).
    pub async fn wait_ended(&self, stream: &str, limit: Duration) -> anyhow::Result<MediaPlaylist> {
        self.wait_for_playlist(stream, limit, |playlist| playlist.ended)
            .await
            .with_context(|| format!("{stream}: playlist never ended"))
    }

    /// Polls the stored live playlist of `stream`, read straight from the S3 folder (not
    /// through the code under test), until `ready` holds or `limit` passes.
    pub async fn wait_for_playlist(
        &self,
        stream: &str,
        limit: Duration,
        ready: impl Fn(&MediaPlaylist) -> bool,
    ) -> anyhow::Result<MediaPlaylist> {
        let path = self.stored_playlist_path(stream);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(text) = tokio::fs::read_to_string(&path).await
                && let Ok(playlist) = crate::hls::parse(&text)
                && ready(&playlist)
            {
                return Ok(playlist);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("gave up after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every object path under the S3 folder, relative to it (`<bucket>/<object>`).
    pub fn stored_object_paths(&self) -> anyhow::Result<Vec<String>> {
        let mut paths = Vec::new();
        let mut pending = vec![self.stack.s3_root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path.clone());
                }
                let relative = path.strip_prefix(&self.stack.s3_root)?;
                paths.push(relative.to_string_lossy().into_owned());
            }
        }
        Ok(paths)
    }

    /// Stops the stack (the worker finalizes playlists first).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stack.shutdown().await
    }
}

/// Runs a python3 snippet with `args` and returns its trimmed stdout: the independent
/// implementation of the signatures the tests check (python's `hmac`/`hashlib`/`base64`).
pub async fn python(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await
        .context("cannot run python3")?;
    if !output.status.success() {
        bail!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Seed 000's key token, computed by python: `b64(HMAC-SHA1(secret, "<sessionid> <stream>"))`.
pub async fn seed000_token(secret: &str, session_id: &str, stream: &str) -> anyhow::Result<String> {
    python(
        "import base64,hashlib,hmac,sys\n\
         msg = (sys.argv[2] + ' ' + sys.argv[3]).encode()\n\
         print(base64.b64encode(hmac.new(sys.argv[1].encode(), msg, hashlib.sha1).digest()).decode())",
        &[secret, session_id, stream],
    )
    .await
}

/// A WMSAuth `wmsAuthSign` value computed by python per docs/PROTOCOLS.md §4: signed at `unix`
/// for `ip`, `valid_minutes`, bound to `stream_path` (`live/<name>`) with `strm_len`.
pub async fn wmsauth_sign(
    key: &str,
    ip: &str,
    unix: u64,
    valid_minutes: u32,
    stream_path: &str,
) -> anyhow::Result<String> {
    python(
        "import base64,hashlib,sys,time\n\
         ip, key, now, valid, stream = sys.argv[1:6]\n\
         tm = time.gmtime(int(now))\n\
         st = '%d/%d/%d %d:%02d:%02d %s' % (tm.tm_mon, tm.tm_mday, tm.tm_year, tm.tm_hour % 12 or 12, \
             tm.tm_min, tm.tm_sec, 'AM' if tm.tm_hour < 12 else 'PM')\n\
         hv = base64.b64encode(hashlib.md5((ip + key + st + valid + stream).encode()).digest()).decode()\n\
         sig = 'server_time=%s&hash_value=%s&validminutes=%s&strm_len=%d' % (st, hv, valid, len(stream))\n\
         print(base64.b64encode(sig.encode()).decode())",
        &[
            ip,
            key,
            &unix.to_string(),
            &valid_minutes.to_string(),
            stream_path,
        ],
    )
    .await
}

/// Publishes `seconds` of test pattern to `url` and reports whether ffmpeg got through to the
/// end (a refused or cut-off publish makes it fail).
pub async fn publishes(url: &str, seconds: u32) -> anyhow::Result<bool> {
    let mut child = crate::ffmpeg::publish(url, seconds)?;
    let limit = Duration::from_secs(u64::from(seconds) + 20);
    Ok(crate::ffmpeg::wait(&mut child, limit).await?.success())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// `url` with query parameter `name=value` appended, percent-encoded as a form value.
pub fn with_query(url: &str, name: &str, value: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(url).context("URL")?;
    url.query_pairs_mut().append_pair(name, value);
    Ok(url.to_string())
}

/// A publisher streaming to a channel of a [`TestStack`].
pub struct Broadcast {
    /// Public stream name.
    pub stream: String,
    /// The channel's secret stream key.
    pub stream_key: String,
    /// The ffmpeg process.
    pub ffmpeg: tokio::process::Child,
}

impl TestStack {
    /// Creates channel `stream`, publishes `seconds` of test pattern to it and returns once
    /// the stored playlist lists `segments` segments.
    pub async fn broadcast(
        &self,
        stream: &str,
        seconds: u32,
        segments: usize,
    ) -> anyhow::Result<Broadcast> {
        let stream_key = self.create_channel(stream).await?;
        let ffmpeg = crate::ffmpeg::publish(&self.stack.publish_url(&stream_key), seconds)?;
        self.wait_for_segments(
            stream,
            segments,
            Duration::from_secs(u64::from(seconds) + 15),
        )
        .await?;
        Ok(Broadcast {
            stream: stream.to_owned(),
            stream_key,
            ffmpeg,
        })
    }
}

impl Broadcast {
    /// Waits for ffmpeg to finish its `seconds` and insists it succeeded (the publish was
    /// accepted to the end).
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let status = crate::ffmpeg::wait(&mut self.ffmpeg, Duration::from_secs(40)).await?;
        if !status.success() {
            bail!("ffmpeg publishing {} exited with {status}", self.stream);
        }
        Ok(())
    }
}
