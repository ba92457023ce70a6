//! Attacks on who the client is (issue 13 items 16 and 14) and on WMSAuth's bindings (items 2
//! and 3), end to end: real stack, real ffmpeg publish, the real compiled components. Each test
//! does exactly the attack, asserts the bodiless 403, and plays the legitimate use next to it.
//!
//! The edge sees every request of these tests from 127.0.0.1; an address like 203.0.113.5 is
//! one the attacker would like to be.

use anyhow::{Context as _, ensure};
use gatecast_e2e::hls;
use gatecast_e2e::stack::{self, TestStack};
use gatecast_e2e::viewer::query_param;

/// An address the attacker is not at, that credentials below are bound to.
const ELSEWHERE: &str = "203.0.113.5";

/// `GET url` with extra request headers (each sent as its own header line, in order).
async fn get_with(
    test: &TestStack,
    url: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut request = test.client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

/// Asserts that `url` with `headers` is refused: 403, empty body.
async fn refused(
    test: &TestStack,
    url: &str,
    headers: &[(&str, &str)],
    what: &str,
) -> anyhow::Result<()> {
    let (status, body) = get_with(test, url, headers).await?;
    ensure!(status == 403, "{what}: expected 403, got {status}");
    ensure!(body.is_empty(), "{what}: 403 with a body");
    Ok(())
}

/// Fetches the playlist at `url` and its first key with `headers`, as a player behind them
/// would; both must answer 200 and the key be 16 bytes. Returns the key's URL.
async fn plays(test: &TestStack, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<String> {
    let (status, body) = get_with(test, url, headers).await?;
    ensure!(status == 200, "playlist {url} answered {status}");
    let playlist = hls::parse(&String::from_utf8(body).context("playlist text")?)?;
    let key_uri = playlist
        .segments
        .first()
        .and_then(|segment| segment.key_uri.as_deref())
        .context("no key URI")?;
    let key_url = hls::resolve(url, key_uri)?;
    let (status, key) = get_with(test, &key_url, headers).await?;
    ensure!(status == 200, "key {key_url} answered {status}");
    ensure!(key.len() == 16, "key of {} bytes", key.len());
    Ok(key_url)
}

/// A playlist URL of `stream` signed by `/api/sign` with `ip` (a gatecast viewer token).
async fn token_for(
    test: &TestStack,
    stream: &str,
    viewer: &str,
    ip: &str,
) -> anyhow::Result<String> {
    test.sign(serde_json::json!({
        "stream": stream, "viewer": viewer, "session": "s", "ttl": 600, "ip": ip,
    }))
    .await
}

/// A `wmsAuthSign` computed by python per the PHP samples: `md5(subject . key . server_time .
/// validminutes . stream)`, with `&strm_len` when `stream` is not empty and `extra` appended
/// (`&id=..&checkip=true`).
async fn php_signature(
    test: &TestStack,
    subject: &str,
    stream: &str,
    extra: &str,
) -> anyhow::Result<String> {
    stack::python(
        "import base64,hashlib,sys,time\n\
         subject, key, now, stream, extra = sys.argv[1:6]\n\
         tm = time.gmtime(int(now))\n\
         st = '%d/%d/%d %d:%02d:%02d %s' % (tm.tm_mon, tm.tm_mday, tm.tm_year, tm.tm_hour % 12 or 12, \
             tm.tm_min, tm.tm_sec, 'AM' if tm.tm_hour < 12 else 'PM')\n\
         hv = base64.b64encode(hashlib.md5((subject + key + st + '5' + stream).encode()).digest()).decode()\n\
         sig = 'server_time=%s&hash_value=%s&validminutes=5' % (st, hv)\n\
         sig += ('&strm_len=%d' % len(stream) if stream else '') + extra\n\
         print(base64.b64encode(sig.encode()).decode())",
        &[
            subject,
            &test.stack.secrets.wmsauth_key,
            &stack::unix_now().to_string(),
            stream,
            extra,
        ],
    )
    .await
}

/// `signature` decoded, its first `from` replaced by `to` (or `to` appended when `from` is
/// empty), re-encoded by python: what an attacker does to a signature they were given.
async fn rewritten(signature: &str, from: &str, to: &str) -> anyhow::Result<String> {
    stack::python(
        "import base64,sys\n\
         sign, old, new = sys.argv[1:4]\n\
         text = base64.b64decode(sign).decode()\n\
         assert not old or old in text, text\n\
         text = text.replace(old, new, 1) if old else text + new\n\
         print(base64.b64encode(text.encode()).decode())",
        &[signature, from, to],
    )
    .await
}

fn with_signature(test: &TestStack, stream: &str, signature: &str) -> anyhow::Result<String> {
    stack::with_query(
        &test.url(&format!("/live/{stream}/index.m3u8")),
        "wmsAuthSign",
        signature,
    )
}

/// Issue 13 item 16: on Spin a client's own `spin-client-addr` reaches the component ahead of
/// Spin's value. A viewer sending `spin-client-addr: 203.0.113.5:1` does not open a URL bound
/// to 203.0.113.5 (token or WMSAuth), while the correctly bound viewer sending the same forged
/// header still plays, and the pay-per-view audit records the real address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item16_forged_spin_client_addr_is_not_the_client() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    let broadcast = test.broadcast("cam", 10, 2).await?;
    let forged = [("spin-client-addr", "203.0.113.5:1")];

    let bound_elsewhere = token_for(&test, "cam", "v16", ELSEWHERE).await?;
    refused(
        &test,
        &bound_elsewhere,
        &forged,
        "token for the forged address",
    )
    .await?;
    let wms_elsewhere = php_signature(&test, ELSEWHERE, "live/cam", "").await?;
    let wms_elsewhere = with_signature(&test, "cam", &wms_elsewhere)?;
    refused(
        &test,
        &wms_elsewhere,
        &forged,
        "WMSAuth for the forged address",
    )
    .await?;

    let bound_here = token_for(&test, "cam", "v16", "127.0.0.1").await?;
    let key_url = plays(&test, &bound_here, &forged).await?;
    let key_id = key_url
        .rsplit('/')
        .next()
        .and_then(|name| name.split('.').next())
        .context("key id in the key URL")?;
    let audit = test
        .api_get(&format!("/api/audit/keys/cam/{key_id}"))
        .await?;
    let entries = audit.as_array().context("audit is a list")?;
    ensure!(!entries.is_empty(), "the key fetch was not audited");
    for entry in entries {
        ensure!(entry["ip"] == "127.0.0.1", "audited address: {entry}");
    }
    broadcast.finish().await?;
    test.shutdown().await
}

/// Issue 13 item 14, default configuration: nobody is a trusted proxy, so a client's
/// `X-Forwarded-For` (or `CF-Connecting-IP`) changes nothing: it does not open a URL bound to
/// the address it names, and the viewer bound to its real address still plays with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item14_forwarding_headers_are_ignored_by_default() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    let broadcast = test.broadcast("cam", 10, 2).await?;
    let spoofed = [
        ("x-forwarded-for", ELSEWHERE),
        ("cf-connecting-ip", ELSEWHERE),
    ];
    let bound_elsewhere = token_for(&test, "cam", "v14", ELSEWHERE).await?;
    refused(
        &test,
        &bound_elsewhere,
        &spoofed,
        "X-Forwarded-For naming the bound IP",
    )
    .await?;
    let bound_here = token_for(&test, "cam", "v14", "127.0.0.1").await?;
    plays(&test, &bound_here, &spoofed).await?;
    broadcast.finish().await?;
    test.shutdown().await
}

/// Issue 13 item 14 behind a CDN: with `trusted_proxies = "127.0.0.0/8"` (the peer the edge
/// sees is the proxy), the right-most untrusted `X-Forwarded-For` entry is the client: a viewer
/// at 203.0.113.5 behind the proxy plays its URL bound to 203.0.113.5, while a client that
/// writes 203.0.113.5 to the left of its real address is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item14_trusted_proxy_names_the_client() -> anyhow::Result<()> {
    let test = TestStack::start_with(&[("trusted_proxies", "127.0.0.0/8")]).await?;
    let broadcast = test.broadcast("cam", 10, 2).await?;
    let bound = token_for(&test, "cam", "v14", ELSEWHERE).await?;
    plays(&test, &bound, &[("x-forwarded-for", ELSEWHERE)]).await?;
    // A second trusted proxy (127.0.0.2) appended after the client's address.
    plays(
        &test,
        &bound,
        &[("x-forwarded-for", "203.0.113.5, 127.0.0.2")],
    )
    .await?;
    // Spoofed left-most entry: the proxy appended the client's real address after it.
    let spoofed = [("x-forwarded-for", "203.0.113.5, 198.51.100.7")];
    refused(&test, &bound, &spoofed, "spoofed left-most X-Forwarded-For").await?;
    refused(&test, &bound, &[], "the proxy's own address").await?;
    // A request the proxy makes itself (no header) is the proxy's.
    let proxy = token_for(&test, "cam", "v14", "127.0.0.1").await?;
    plays(&test, &proxy, &[]).await?;
    broadcast.finish().await?;
    test.shutdown().await
}

/// Issue 13 item 2: the MD5 input joins subject and key with no separator, so an IP-bound
/// signature with `&id=<the bound IP>` appended, or a `checkip` one whose id becomes
/// `ip + id`, hashes the same as before but would be id-only, valid from any address. Both are
/// refused (even with `wmsauth_allow_id_only` on), while the properly bound `checkip` viewer
/// plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item2_wmsauth_ip_binding_cannot_be_stripped() -> anyhow::Result<()> {
    let test = TestStack::start_with(&[("wmsauth_allow_id_only", "true")]).await?;
    let broadcast = test.broadcast("cam", 10, 2).await?;

    let ip_bound = php_signature(&test, ELSEWHERE, "live/cam", "").await?;
    let stripped = rewritten(&ip_bound, "", &format!("&id={ELSEWHERE}")).await?;
    refused(
        &test,
        &with_signature(&test, "cam", &stripped)?,
        &[],
        "IP signature as id",
    )
    .await?;

    let checkip = php_signature(&test, "203.0.113.5u1", "live/cam", "&id=u1&checkip=true").await?;
    let joined = rewritten(&checkip, "&id=u1&checkip=true", "&id=203.0.113.5u1").await?;
    refused(
        &test,
        &with_signature(&test, "cam", &joined)?,
        &[],
        "checkip as ip+id",
    )
    .await?;

    let here = php_signature(&test, "127.0.0.1u1", "live/cam", "&id=u1&checkip=true").await?;
    plays(&test, &with_signature(&test, "cam", &here)?, &[]).await?;
    broadcast.finish().await?;
    test.shutdown().await
}

/// Issue 13 item 3: a signature opens exactly the stream it names. The `/api/sign` URL for
/// `dem` plays `dem` but not `demo` (live) or `dem-vip`; a third-party signature without
/// `strm_len` opens nothing by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item3_wmsauth_opens_exactly_its_stream() -> anyhow::Result<()> {
    let test = TestStack::start().await?;
    test.create_channel("dem-vip").await?;
    let dem = test.broadcast("dem", 10, 2).await?;
    let demo = test.broadcast("demo", 10, 2).await?;

    let signed = test
        .sign(serde_json::json!({
            "stream": "dem", "ttl": 300, "ip": "127.0.0.1", "scheme": "wmsauth",
        }))
        .await?;
    plays(&test, &signed, &[]).await?;
    let signature = query_param(&signed, "wmsAuthSign").context("wmsAuthSign")?;
    for other in ["demo", "dem-vip"] {
        let url = with_signature(&test, other, &signature)?;
        refused(&test, &url, &[], &format!("dem's signature on {other}")).await?;
    }
    let unscoped = php_signature(&test, "127.0.0.1", "", "").await?;
    refused(
        &test,
        &with_signature(&test, "demo", &unscoped)?,
        &[],
        "no strm_len",
    )
    .await?;
    let exact = php_signature(&test, "127.0.0.1", "live/demo", "").await?;
    plays(&test, &with_signature(&test, "demo", &exact)?, &[]).await?;
    dem.finish().await?;
    demo.finish().await?;
    test.shutdown().await
}
