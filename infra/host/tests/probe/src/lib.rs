//! gatecast-host conformance probe.
//!
//! One Spin component whose behaviour is picked by the request path, so that the host's tests can
//! drive every host interface (variables, key-value, outbound HTTP, traps, limits, routing headers)
//! through a real compiled component instead of mocks. Every answer is plain text or JSON that the
//! tests compare against values written by hand from Spin's documented behaviour.

use spin_sdk::http::body::IncomingBodyExt as _;
use spin_sdk::http::{Request, StatusCode};
use spin_sdk::http_service;
use spin_sdk::key_value::{self, Store};
use spin_sdk::variables;

/// The probe's reply: status plus a UTF-8 body, so tests can assert on both.
type Reply = spin_sdk::http::Result<(StatusCode, String)>;

fn reply(status: StatusCode, body: impl Into<String>) -> Reply {
    Ok((status, body.into()))
}

#[http_service]
async fn handle(request: Request) -> Reply {
    // Dispatch on the part of the path below the matched route, so the probe behaves the same
    // whichever route (and component id) it is mounted at.
    let path = request
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| request.uri().path())
        .to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["var", name] => variable(name).await,
        ["kv", label, op, rest @ ..] => {
            let key = rest.join("/");
            let body = request.into_body().bytes().await?;
            key_value_op(label, op, &key, &body).await
        }
        ["outbound"] => {
            let url = request
                .headers()
                .get("x-probe-url")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            outbound(&url).await
        }
        ["served"] => served_by_this_instance(),
        ["trap"] => panic!("probe asked to trap"),
        ["spin"] => busy_loop(),
        ["alloc", megabytes] => allocate(megabytes),
        ["big", bytes] => big_body(bytes),
        _ => echo_routing(&request),
    }
}

/// `GET /var/<name>`: the variable's value, or the error variant as `<variant>: <message>`.
async fn variable(name: &str) -> Reply {
    match variables::get(name).await {
        Ok(value) => reply(StatusCode::OK, value),
        Err(variables::Error::Undefined(msg)) => {
            reply(StatusCode::NOT_FOUND, format!("undefined: {msg}"))
        }
        Err(variables::Error::InvalidName(msg)) => {
            reply(StatusCode::BAD_REQUEST, format!("invalid-name: {msg}"))
        }
        Err(other) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")),
    }
}

fn kv_error(err: key_value::Error) -> Reply {
    let (status, text) = match err {
        key_value::Error::AccessDenied => (StatusCode::FORBIDDEN, "access-denied".to_owned()),
        key_value::Error::NoSuchStore => (StatusCode::NOT_FOUND, "no-such-store".to_owned()),
        key_value::Error::StoreTableFull => (
            StatusCode::INSUFFICIENT_STORAGE,
            "store-table-full".to_owned(),
        ),
        key_value::Error::Other(msg) => (StatusCode::SERVICE_UNAVAILABLE, format!("other: {msg}")),
    };
    reply(status, text)
}

/// `/kv/<label>/<op>/<key>`: one key-value operation; errors come back as their WIT variant name.
async fn key_value_op(label: &str, op: &str, key: &str, body: &[u8]) -> Reply {
    let store = match Store::open(label).await {
        Ok(store) => store,
        Err(err) => return kv_error(err),
    };
    let outcome = match op {
        "open" => Ok("opened".to_owned()),
        "get" => match store.get(key).await {
            Ok(Some(value)) => Ok(String::from_utf8_lossy(&value).into_owned()),
            Ok(None) => return reply(StatusCode::NOT_FOUND, "none"),
            Err(err) => Err(err),
        },
        "set" => store.set(key, body).await.map(|()| "set".to_owned()),
        "delete" => store.delete(key).await.map(|()| "deleted".to_owned()),
        "exists" => store.exists(key).await.map(|found| found.to_string()),
        "keys" => store.get_keys().await.collect().await.map(|mut keys| {
            keys.sort();
            keys.join("\n")
        }),
        _ => return reply(StatusCode::BAD_REQUEST, "unknown op"),
    };
    match outcome {
        Ok(text) => reply(StatusCode::OK, text),
        Err(err) => kv_error(err),
    }
}

/// `GET /outbound` with `x-probe-url`: fetch it; `200 status=<code>\n<body>` or `502 <ErrorCode>`.
async fn outbound(url: &str) -> Reply {
    match spin_sdk::http::get(url).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.into_body().bytes().await?;
            reply(
                StatusCode::OK,
                format!("status={status}\n{}", String::from_utf8_lossy(&body)),
            )
        }
        Err(code) => reply(StatusCode::BAD_GATEWAY, format!("{code:?}")),
    }
}

/// Requests this instance has served, this one included.
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `GET /served`: how many requests this instance has handled, which shows whether the host
/// reuses instances (Spin does for WASIp3 components) and within which limits.
fn served_by_this_instance() -> Reply {
    let served = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    reply(StatusCode::OK, served.to_string())
}

/// `GET /spin`: never returns, so only the host's time limit can end it.
fn busy_loop() -> Reply {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// `GET /alloc/<megabytes>`: touch that much linear memory, to hit the host's memory limit.
fn allocate(megabytes: &str) -> Reply {
    let Ok(megabytes) = megabytes.parse::<usize>() else {
        return reply(StatusCode::BAD_REQUEST, "megabytes must be a number");
    };
    let buffer = vec![1u8; megabytes * 1024 * 1024];
    let sum: usize = std::hint::black_box(&buffer)
        .iter()
        .map(|b| usize::from(*b))
        .sum();
    reply(StatusCode::OK, sum.to_string())
}

/// `GET /big/<bytes>`: a body of that many `x`, to check bodies larger than one stream chunk.
fn big_body(bytes: &str) -> Reply {
    let Ok(bytes) = bytes.parse::<usize>() else {
        return reply(StatusCode::BAD_REQUEST, "bytes must be a number");
    };
    reply(StatusCode::OK, "x".repeat(bytes))
}

/// Anything else: the Spin routing headers the host set, as a JSON object (`headers`: the
/// last value of each name) and every value in the order the guest sees them (`values`: a
/// name to a list), so a test can tell a client-sent value from the host's own.
fn echo_routing(request: &Request) -> Reply {
    let mut headers = serde_json::Map::new();
    let mut values = serde_json::Map::new();
    for (name, value) in request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("spin-") || name.as_str() == "host")
    {
        let value = serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into());
        headers.insert(name.as_str().to_owned(), value.clone());
        if let Some(list) = values
            .entry(name.as_str())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            .as_array_mut()
        {
            list.push(value);
        }
    }
    let mut object = serde_json::Map::new();
    object.insert("path".to_owned(), request.uri().path().into());
    object.insert("headers".to_owned(), headers.into());
    object.insert("values".to_owned(), values.into());
    reply(
        StatusCode::OK,
        serde_json::Value::Object(object).to_string(),
    )
}
