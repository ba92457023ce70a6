//! nginx-rtmp compatible `on_publish` / `on_update` / `on_publish_done` HTTP callbacks.
//!
//! The request shape and the reply rules are nginx-rtmp's, so an existing site backend (such as
//! the Django views of the original recipe) works unchanged: an urlencoded form POST; 2xx allows,
//! 3xx with a `Location` renames, anything else (or no answer in time) refuses. `on_update` is
//! nginx-rtmp's heartbeat of a live publish (`call=update_publish`, plus `time` and
//! `timestamp`); its answer decides whether the publisher may go on ([`update_keeps_publishing`]).
//!
//! The form itself (nginx-rtmp's fields plus gatecast's `lease` and `update_interval`) is
//! [`gatecast_core::hook`]'s, shared with the edge api that reads it (docs/PROTOCOLS.md §1);
//! this module only sends it and reads the answers.

use std::time::Duration;

use bytes::Bytes;
use gatecast_core::hook::{Call, HookForm};
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::PublishRequest;

/// Why a hook URL was not accepted at start-up.
///
/// Hook URLs usually carry a shared secret in their query (the edge's
/// `/hooks/on-publish?secret=…`) or in their userinfo, so no variant holds the URL as
/// configured: `Display` shows at most [`redacted`]'s `scheme://host/path`.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The URL does not parse. Neither the URL nor the parser's message (which may quote it)
    /// is kept.
    #[error("a hook URL is not a valid URI")]
    InvalidUrl,
    /// Only plain `http://` is supported: hooks are expected on the same host or private network.
    #[error("hook URL {shown} must start with http://")]
    UnsupportedScheme {
        /// The URL without query, fragment or userinfo.
        shown: String,
    },
    /// `user:password@` in a hook URL is refused: it authenticates nothing (no HTTP client
    /// header is made of it) and the HTTP client's own trace logs print it. A hook secret
    /// belongs in a query argument.
    #[error("hook URL {shown} must not carry user:password@")]
    Userinfo {
        /// The URL without query, fragment or userinfo.
        shown: String,
    },
}

/// A hook's URL, and the form of it that may be logged.
#[derive(Clone)]
struct HookUrl {
    uri: Uri,
    /// `scheme://host[:port]/path`: no query, no userinfo (see [`redacted`]).
    shown: String,
}

impl HookUrl {
    fn parse(url: &str) -> Result<Self, HookError> {
        let uri: Uri = url.parse().map_err(|_| HookError::InvalidUrl)?;
        let shown = redacted(&uri);
        if uri.scheme_str() != Some("http") {
            return Err(HookError::UnsupportedScheme { shown });
        }
        if uri
            .authority()
            .is_some_and(|authority| authority.as_str().contains('@'))
        {
            return Err(HookError::Userinfo { shown });
        }
        Ok(Self { uri, shown })
    }
}

/// [`redacted`] of a configured URL, for `Debug` output of the configuration.
pub fn redacted_url(url: &str) -> String {
    url.parse::<Uri>()
        .map_or_else(|_| "<invalid URL>".to_owned(), |uri| redacted(&uri))
}

/// `scheme://host[:port]/path` of `uri`: what of a hook URL may reach a log line or an error.
/// The query and the userinfo are left out, since either may hold the hook's secret.
pub fn redacted(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}

/// What the `on_publish` hook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// 2xx: allowed, under the name the publisher used (published only when that name is
    /// declared public, see [`HookClient::with_public_names`]).
    Allowed,
    /// 3xx with a usable `Location`: publish under this (not yet validated) name.
    Renamed(String),
    /// Any other status, or a 3xx without a usable `Location`.
    Refused(StatusCode),
    /// No answer within the timeout, or the hook could not be reached.
    Unavailable,
}

/// The `on_update` heartbeat: where, how often, and how strictly its answers are read.
#[derive(Clone)]
struct UpdateHook {
    url: HookUrl,
    interval: Duration,
    strict: bool,
}

/// Calls the configured hooks. Cheap to clone.
#[derive(Clone)]
pub struct HookClient {
    client: Client<HttpConnector, Full<Bytes>>,
    on_publish: Option<HookUrl>,
    on_publish_done: Option<HookUrl>,
    on_update: Option<UpdateHook>,
    timeout: Duration,
    names_public: bool,
}

impl HookClient {
    /// Validates the URLs; `None` for both means no hooks.
    pub fn new(
        on_publish: Option<&str>,
        on_publish_done: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, HookError> {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            client,
            on_publish: on_publish.map(HookUrl::parse).transpose()?,
            on_publish_done: on_publish_done.map(HookUrl::parse).transpose()?,
            on_update: None,
            timeout,
            names_public: false,
        })
    }

    /// Declares the names `on_publish` allows with a 2xx public (`--on-publish-names-are-public`):
    /// nginx-rtmp setups whose secret travels in a query argument, not in the stream name.
    /// Without it a 2xx that names no public stream (no 3xx `Location`) refuses the publish.
    pub fn with_public_names(mut self, public: bool) -> Self {
        self.names_public = public;
        self
    }

    /// Whether a 2xx from `on_publish` may publish under the presented name.
    pub fn names_are_public(&self) -> bool {
        self.names_public
    }

    /// Adds the `on_update` heartbeat (nginx-rtmp's `on_update`, `notify_update_timeout` and
    /// `notify_update_strict`).
    pub fn with_update(
        mut self,
        url: &str,
        interval: Duration,
        strict: bool,
    ) -> Result<Self, HookError> {
        self.on_update = Some(UpdateHook {
            url: HookUrl::parse(url)?,
            interval,
            strict,
        });
        Ok(self)
    }

    /// The `on_update` period, when the heartbeat is configured.
    pub fn update_interval(&self) -> Option<Duration> {
        self.on_update.as_ref().map(|update| update.interval)
    }

    /// Whether an `on_publish` hook is configured.
    pub fn has_on_publish(&self) -> bool {
        self.on_publish.is_some()
    }

    /// Asks `on_publish` whether `request` may publish.
    pub async fn on_publish(&self, request: &PublishRequest) -> HookVerdict {
        let Some(url) = &self.on_publish else {
            return HookVerdict::Refused(StatusCode::FORBIDDEN);
        };
        let response = match self.post(url, self.form(Call::Publish, request)).await {
            Some(response) => response,
            None => return HookVerdict::Unavailable,
        };
        let status = response.status();
        if status.is_success() {
            return HookVerdict::Allowed;
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok());
            if let Some(name) = location.and_then(renamed_stream) {
                return HookVerdict::Renamed(name.to_owned());
            }
        }
        HookVerdict::Refused(status)
    }

    /// Tells `on_publish_done` that `request`'s stream ended. The reply is ignored, as in
    /// nginx-rtmp; failures are only logged.
    pub async fn on_publish_done(&self, request: &PublishRequest) {
        if let Some(url) = &self.on_publish_done {
            match self.post(url, self.form(Call::PublishDone, request)).await {
                Some(response) => {
                    tracing::debug!(status = %response.status(), "on_publish_done answered")
                }
                None => tracing::warn!("on_publish_done hook unreachable"),
            }
        }
    }

    /// Sends `on_update` for a publish live for `elapsed` whose media reached RTMP timestamp
    /// `timestamp_ms`; whether the publisher may go on (always true without the hook).
    pub async fn on_update(
        &self,
        request: &PublishRequest,
        elapsed: Duration,
        timestamp_ms: u32,
    ) -> bool {
        let Some(update) = &self.on_update else {
            return true;
        };
        let call = Call::UpdatePublish {
            time_secs: elapsed.as_secs(),
            timestamp_ms,
        };
        let body = self.form(call, request);
        let status = self
            .post(&update.url, body)
            .await
            .map(|response| response.status());
        let keep = update_keeps_publishing(status, update.strict);
        if !keep {
            tracing::info!(status = ?status, strict = update.strict, "on_update refused the live publish");
        }
        keep
    }

    /// [`form_body`] with this worker's `update_interval` when the heartbeat is configured.
    fn form(&self, call: Call, request: &PublishRequest) -> String {
        let interval = self
            .update_interval()
            .map(|interval| interval.as_secs().max(1));
        form_body(call, request, interval)
    }

    async fn post(&self, url: &HookUrl, body: String) -> Option<http::Response<()>> {
        let request = Request::post(url.uri.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .ok()?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            // Drain (bounded by the timeout) so the connection can be reused.
            let _ = body.collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(http::Response::from_parts(parts, ()))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(response)) => Some(response),
            Ok(Err(error)) => {
                tracing::warn!(url = %url.shown, error = %error, "hook request failed");
                None
            }
            Err(_) => {
                tracing::warn!(url = %url.shown, timeout = ?self.timeout, "hook did not answer in time");
                None
            }
        }
    }
}

/// How an `on_update` answer is read (`None`: unreachable or timed out): 2xx goes on; a strict
/// heartbeat (nginx-rtmp's `notify_update_strict on`) stops on anything else; a lenient one, the
/// default, stops only on a 4xx (or another non-2xx/3xx/5xx status), so a hook outage never
/// ends a broadcast. nginx-rtmp's lenient mode also stops on a 5xx; here a 5xx means the hook
/// is down (the edge answers 503 while its store is), not that the publisher is unwelcome.
pub fn update_keeps_publishing(status: Option<StatusCode>, strict: bool) -> bool {
    match status {
        Some(status) if status.is_success() => true,
        Some(status) if status.is_redirection() || status.is_server_error() => !strict,
        Some(_) => false,
        None => !strict,
    }
}

/// The hook form of `call` for `request` ([`HookForm::encode`]). `name` is always the ORIGINAL
/// stream name (the secret key), also for `publish_done` after a rename, so the site can match
/// the calls.
fn form_body(call: Call, request: &PublishRequest, update_interval_secs: Option<u64>) -> String {
    let connect = &request.connect;
    HookForm {
        app: &request.app,
        flashver: &connect.flashver,
        swfurl: &connect.swfurl,
        tcurl: &connect.tcurl,
        pageurl: &connect.pageurl,
        addr: request.addr,
        client_id: request.client_id,
        name: request.key.expose(),
        lease: &request.lease_id,
        update_interval_secs,
        publisher_args: &request.args,
    }
    .encode(call)
}

/// The new stream name in a 3xx `Location`: its last path segment, with any query or fragment
/// removed, whether the location is relative (`benw`, `/u/benw`) or absolute
/// (`http://site/u/benw`). An `rtmp://` location is nginx-rtmp's relay redirect, which this worker
/// does not do, so it yields `None`, as does an empty segment.
pub fn renamed_stream(location: &str) -> Option<&str> {
    let location = location.trim();
    if location.len() >= 7 && location[..7].eq_ignore_ascii_case("rtmp://") {
        return None;
    }
    let without_fragment = location.split('#').next().unwrap_or_default();
    let path = without_fragment.split('?').next().unwrap_or_default();
    let path = match path.find("://") {
        // Absolute URL: skip scheme and authority.
        Some(scheme_end) => {
            let after = &path[scheme_end + 3..];
            after.find('/').map_or("", |slash| &after[slash..])
        }
        None => path,
    };
    let segment = path.rsplit('/').next().unwrap_or_default();
    (!segment.is_empty()).then_some(segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ConnectInfo, StreamKey};

    #[test]
    fn locations_rename_to_their_last_segment() {
        assert_eq!(renamed_stream("benw"), Some("benw"));
        assert_eq!(renamed_stream("/users/benw"), Some("benw"));
        assert_eq!(
            renamed_stream("http://site.example/users/benw?x=1#top"),
            Some("benw")
        );
        assert_eq!(renamed_stream("https://site.example/benw"), Some("benw"));
        assert_eq!(renamed_stream("rtmp://other/live/benw"), None);
        assert_eq!(renamed_stream("RTMP://other/live/benw"), None);
        assert_eq!(renamed_stream("http://site.example"), None);
        assert_eq!(renamed_stream("/users/"), None);
        assert_eq!(renamed_stream(""), None);
    }

    #[test]
    fn form_matches_nginx_rtmp_fields() {
        let request = PublishRequest {
            key: StreamKey::new("J42nin Lbjl&2E2V8ePqy7"),
            args: vec![("token".into(), "a b".into())],
            app: "live".into(),
            addr: "192.0.2.4".parse().expect("ip"),
            client_id: 17,
            lease_id: "5be1".into(),
            connect: ConnectInfo {
                tcurl: "rtmp://127.0.0.1:1935/live".into(),
                flashver: "FMLE/3.0 (compatible; Lavf61.7.100)".into(),
                swfurl: String::new(),
                pageurl: String::new(),
            },
        };
        let body = form_body(Call::Publish, &request, None);
        // Expected text written by hand from the form-urlencoded rules (space → '+').
        assert_eq!(
            body,
            "app=live&flashver=FMLE%2F3.0+%28compatible%3B+Lavf61.7.100%29&swfurl=\
             &tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive&pageurl=&addr=192.0.2.4&clientid=17\
             &call=publish&name=J42nin+Lbjl%262E2V8ePqy7&type=live&lease=5be1&token=a+b"
        );
        let update = form_body(
            Call::UpdatePublish {
                time_secs: 4,
                timestamp_ms: 4021,
            },
            &request,
            Some(2),
        );
        assert!(
            update.ends_with(
                "&call=update_publish&name=J42nin+Lbjl%262E2V8ePqy7&type=live&lease=5be1\
                 &update_interval=2&time=4&timestamp=4021&token=a+b"
            ),
            "{update}"
        );
    }

    /// nginx-rtmp's `ngx_rtmp_notify_update_handle`: lenient mode ends the publish only on a
    /// parsed status other than 2xx/3xx (here 5xx too is an outage); strict on anything but 2xx.
    #[test]
    fn update_answers_follow_nginx_rtmp() {
        let cases = [
            (Some(StatusCode::OK), true, true),
            (Some(StatusCode::NO_CONTENT), true, true),
            (Some(StatusCode::FOUND), true, false),
            (Some(StatusCode::FORBIDDEN), false, false),
            (Some(StatusCode::CONFLICT), false, false),
            (Some(StatusCode::SERVICE_UNAVAILABLE), true, false),
            (None, true, false),
        ];
        for (status, lenient, strict) in cases {
            assert_eq!(
                update_keeps_publishing(status, false),
                lenient,
                "{status:?}"
            );
            assert_eq!(
                update_keeps_publishing(status, true),
                strict,
                "{status:?} strict"
            );
        }
    }

    #[test]
    fn only_plain_http_hooks() {
        assert!(
            HookClient::new(
                Some("http://127.0.0.1:8080/on_publish"),
                None,
                Duration::from_secs(1)
            )
            .is_ok()
        );
        assert!(matches!(
            HookClient::new(
                Some("https://site/on_publish"),
                None,
                Duration::from_secs(1)
            ),
            Err(HookError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            HookClient::new(None, Some("not a url"), Duration::from_secs(1)),
            Err(HookError::InvalidUrl)
        ));
    }

    /// Issue 13 item 9: the hook secret travels in the URL's query (or userinfo); neither
    /// reaches an error's text.
    #[test]
    fn hook_errors_never_show_the_secret() {
        let secret = "hOoKsEcReT42";
        let https = HookClient::new(
            Some(&format!(
                "https://user:{secret}@site.example:8443/hooks/on-publish?secret={secret}"
            )),
            None,
            Duration::from_secs(1),
        )
        .err()
        .expect("https refused");
        assert_eq!(
            https.to_string(),
            "hook URL https://site.example:8443/hooks/on-publish must start with http://"
        );
        let invalid = HookClient::new(
            None,
            Some(&format!("http://site/ x?secret={secret}")),
            Duration::from_secs(1),
        )
        .err()
        .expect("invalid URL refused");
        let userinfo = HookClient::new(
            Some(&format!("http://ops:{secret}@127.0.0.1:8080/on_publish")),
            None,
            Duration::from_secs(1),
        )
        .err()
        .expect("userinfo refused");
        assert_eq!(
            userinfo.to_string(),
            "hook URL http://127.0.0.1:8080/on_publish must not carry user:password@"
        );
        let chain = format!("{:?} {}", anyhow::Error::from(invalid), https);
        assert!(!chain.contains(secret), "{chain}");
    }
}
