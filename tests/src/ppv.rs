//! Pay-per-view test support: a real WMSPanel-style PPV handler (protocols.md §5) on `127.0.0.1:0` that checks `Signature` with python3's
//! `hashlib` (not gatecast's code) and answers a configurable deny list and `Solution`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::ensure;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::stack::python;

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
