//! nginx-rtmp compatible `on_publish` / `on_publish_done` HTTP callbacks.
//!
//! The request shape and the reply rules are nginx-rtmp's, so an existing site backend (such as
//! the Django views of the original recipe) works unchanged: an urlencoded form POST; 2xx allows,
//! 3xx with a `Location` renames, anything else (or no answer in time) refuses.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::PublishRequest;

/// Why a hook URL was not accepted at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// The URL does not parse.
    #[error("hook URL {url:?} is not a valid URI")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Parser error.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// Only plain `http://` is supported: hooks are expected on the same host or private network.
    #[error("hook URL {url:?} must start with http://")]
    UnsupportedScheme {
        /// The URL as configured.
        url: String,
    },
}

/// What the `on_publish` hook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// 2xx: publish under the name the publisher used.
    Allowed,
    /// 3xx with a usable `Location`: publish under this (not yet validated) name.
    Renamed(String),
    /// Any other status, or a 3xx without a usable `Location`.
    Refused(StatusCode),
    /// No answer within the timeout, or the hook could not be reached.
    Unavailable,
}

/// Calls the configured hooks. Cheap to clone.
#[derive(Clone)]
pub struct HookClient {
    client: Client<HttpConnector, Full<Bytes>>,
    on_publish: Option<Uri>,
    on_publish_done: Option<Uri>,
    timeout: Duration,
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
            on_publish: on_publish.map(parse_hook_url).transpose()?,
            on_publish_done: on_publish_done.map(parse_hook_url).transpose()?,
            timeout,
        })
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
        let response = match self.post(url, form_body("publish", request)).await {
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
            match self.post(url, form_body("publish_done", request)).await {
                Some(response) => {
                    tracing::debug!(status = %response.status(), "on_publish_done answered")
                }
                None => tracing::warn!("on_publish_done hook unreachable"),
            }
        }
    }

    async fn post(&self, url: &Uri, body: String) -> Option<http::Response<()>> {
        let request = Request::post(url.clone())
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
                tracing::warn!(%url, error = %error, "hook request failed");
                None
            }
            Err(_) => {
                tracing::warn!(%url, timeout = ?self.timeout, "hook did not answer in time");
                None
            }
        }
    }
}

fn parse_hook_url(url: &str) -> Result<Uri, HookError> {
    let uri: Uri = url.parse().map_err(|source| HookError::InvalidUrl {
        url: url.to_owned(),
        source,
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(HookError::UnsupportedScheme {
            url: url.to_owned(),
        });
    }
    Ok(uri)
}

/// The form nginx-rtmp posts: its fixed fields, then every query argument the publisher put on
/// its RTMP URL. `name` is always the ORIGINAL stream name (the secret key), also for
/// `publish_done` after a rename, so the site can match the two calls.
pub fn form_body(call: &str, request: &PublishRequest) -> String {
    let connect = &request.connect;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("app", &request.app)
        .append_pair("flashver", &connect.flashver)
        .append_pair("swfurl", &connect.swfurl)
        .append_pair("tcurl", &connect.tcurl)
        .append_pair("pageurl", &connect.pageurl)
        .append_pair("addr", &request.addr.to_string())
        .append_pair("clientid", &request.client_id.to_string())
        .append_pair("call", call)
        .append_pair("name", request.key.expose())
        .append_pair("type", "live");
    for (name, value) in &request.args {
        form.append_pair(name, value);
    }
    form.finish()
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
            connect: ConnectInfo {
                tcurl: "rtmp://127.0.0.1:1935/live".into(),
                flashver: "FMLE/3.0 (compatible; Lavf61.7.100)".into(),
                swfurl: String::new(),
                pageurl: String::new(),
            },
        };
        let body = form_body("publish", &request);
        // Expected text written by hand from the form-urlencoded rules (space → '+').
        assert_eq!(
            body,
            "app=live&flashver=FMLE%2F3.0+%28compatible%3B+Lavf61.7.100%29&swfurl=\
             &tcurl=rtmp%3A%2F%2F127.0.0.1%3A1935%2Flive&pageurl=&addr=192.0.2.4&clientid=17\
             &call=publish&name=J42nin+Lbjl%262E2V8ePqy7&type=live&token=a+b"
        );
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
            Err(HookError::InvalidUrl { .. })
        ));
    }
}
