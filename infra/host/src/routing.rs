//! HTTP routing and the `spin-*` request headers, matching Spin's HTTP trigger.
//!
//! Spin builds a `routefinder` router from the manifest routes (a trailing `/...` becomes a `*`
//! wildcard, `:name` segments capture), picks the *best* match (exact beats parameter beats
//! wildcard, compared segment by segment), and tells the component how it was reached through
//! headers. We use the same `routefinder` crate and the same transformations so route
//! precedence and header values are identical to Spin's.

use crate::manifest::HttpTrigger;
use std::collections::HashMap;
use std::net::SocketAddr;

/// A route could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// `routefinder` rejected the pattern.
    #[error("error parsing route {route:?} associated with component {component:?}: {reason}")]
    Invalid {
        /// The route as written.
        route: String,
        /// The component it points to.
        component: String,
        /// Parser message.
        reason: String,
    },
}

#[derive(Debug, Clone)]
struct RouteHandler {
    component_id: String,
    /// The route with the (always `/`) base applied, as Spin's `based_route`.
    based_route: String,
    /// The route as written in the manifest.
    raw_route: String,
}

/// The router for one application.
#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<RouteHandler>,
}

/// How a request path matched: everything needed for dispatch and the `spin-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component that handles the request.
    pub component_id: String,
    /// `spin-matched-route`.
    pub based_route: String,
    /// `spin-raw-component-route`.
    pub raw_route: String,
    /// `spin-path-info`: the part matched by a trailing wildcard.
    pub path_info: String,
    /// `:name` captures, by name.
    pub params: Vec<(String, String)>,
}

/// Spin's `sanitize_with_base("/", route)`: absolutise, strip one trailing slash.
fn based(route: &str) -> String {
    let absolute = if route.starts_with('/') {
        route.to_owned()
    } else {
        format!("/{route}")
    };
    absolute
        .strip_suffix('/')
        .map(str::to_owned)
        .unwrap_or(absolute)
}

impl Router {
    /// Builds the router; for duplicate routes the last trigger wins, as in Spin.
    pub fn build(triggers: &[HttpTrigger]) -> Result<Self, RouteError> {
        let mut by_route: Vec<(String, RouteHandler)> = Vec::new();
        for trigger in triggers {
            let Some(raw_route) = &trigger.route else {
                continue;
            };
            let handler = RouteHandler {
                component_id: trigger.component.clone(),
                based_route: based(raw_route),
                raw_route: raw_route.clone(),
            };
            match by_route.iter_mut().find(|(route, _)| route == raw_route) {
                Some(existing) => existing.1 = handler,
                None => by_route.push((raw_route.clone(), handler)),
            }
        }
        let mut inner = routefinder::Router::new();
        for (_, handler) in by_route {
            let spec = match handler.based_route.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => handler.based_route.clone(),
            };
            let invalid = |reason: String| RouteError::Invalid {
                route: handler.raw_route.clone(),
                component: handler.component_id.clone(),
                reason,
            };
            inner.add(spec.as_str(), handler.clone()).map_err(invalid)?;
        }
        Ok(Self { inner })
    }

    /// The best route for `path`, or `None` (→ 404).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let best = self.inner.best_match(path)?;
        let handler = best.handler();
        let captures = best.captures();
        // Spin keeps trailing slashes in path-info, which routefinder drops.
        let path_info = captures
            .wildcard()
            .map(|wild| match (wild.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_owned(),
                (false, false) => format!("/{wild}"),
                (false, true) => format!("/{wild}/"),
            })
            .unwrap_or_default();
        Some(RouteMatch {
            component_id: handler.component_id.clone(),
            based_route: handler.based_route.clone(),
            raw_route: handler.raw_route.clone(),
            path_info,
            params: captures
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    /// Every routable (route, component) pair, for the startup banner.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .iter()
            .map(|(_, h)| (h.raw_route.as_str(), h.component_id.as_str()))
    }
}

impl RouteMatch {
    /// The match Spin synthesises for a chained request (`http://<component>.spin.internal`):
    /// no routing happens, the component is named by the host, and the request looks as if
    /// it had matched a `/...` route with the whole path as path-info.
    pub fn chained(component_id: &str, path: &str) -> Self {
        Self {
            component_id: component_id.to_owned(),
            based_route: "/...".to_owned(),
            raw_route: "/...".to_owned(),
            path_info: path.to_owned(),
            params: Vec::new(),
        }
    }

    /// The headers Spin adds to the request for the component, lower-case names.
    ///
    /// `host` is the request's Host header (`localhost` if absent) and `path_and_query` the
    /// request target; together they form `spin-full-url` like Spin does (scheme `http`).
    pub fn spin_headers(
        &self,
        host: &str,
        path_and_query: &str,
        client_addr: SocketAddr,
    ) -> Vec<(String, String)> {
        let component_route = self
            .raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
            .to_owned();
        let mut headers = vec![
            ("spin-path-info".to_owned(), self.path_info.clone()),
            (
                "spin-full-url".to_owned(),
                format!("http://{host}{path_and_query}"),
            ),
            ("spin-matched-route".to_owned(), self.based_route.clone()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            (
                "spin-raw-component-route".to_owned(),
                self.raw_route.clone(),
            ),
            ("spin-component-route".to_owned(), component_route),
            ("spin-client-addr".to_owned(), client_addr.to_string()),
        ];
        // Spin: `SPIN_PATH_MATCH_{NAME}` → lower-case, `_` → `-`.
        let params: HashMap<&str, &str> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (name, value) in params {
            headers.push((
                format!(
                    "spin-path-match-{}",
                    name.to_ascii_lowercase().replace('_', "-")
                ),
                value.to_owned(),
            ));
        }
        headers
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let triggers: Vec<HttpTrigger> = routes
            .iter()
            .map(|(route, component)| HttpTrigger {
                id: None,
                route: Some((*route).to_owned()),
                component: (*component).to_owned(),
            })
            .collect();
        Router::build(&triggers).unwrap()
    }

    fn component(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component_id)
    }

    #[test]
    fn exact_beats_wildcard_and_longest_wildcard_wins() {
        let r = router(&[
            ("/...", "all"),
            ("/one", "one_exact"),
            ("/one/...", "one_wild"),
            ("/one/two/...", "onetwo_wild"),
        ]);
        assert_eq!(component(&r, "/one").as_deref(), Some("one_exact"));
        assert_eq!(component(&r, "/one/x").as_deref(), Some("one_wild"));
        assert_eq!(
            component(&r, "/one/two/three").as_deref(),
            Some("onetwo_wild")
        );
        assert_eq!(component(&r, "/").as_deref(), Some("all"));
        assert_eq!(component(&r, "/zzz").as_deref(), Some("all"));
    }

    #[test]
    fn unmatched_is_none_and_exact_does_not_match_children() {
        let r = router(&[("/foo", "foo")]);
        assert_eq!(component(&r, "/foo/bar"), None);
        assert_eq!(component(&r, "/bar"), None);
    }

    #[test]
    fn duplicate_routes_last_one_wins() {
        let r = router(&[("/foo", "first"), ("/foo", "second")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("second"));
        assert_eq!(r.routes().count(), 1);
    }

    #[test]
    fn trailing_wildcard_keeps_trailing_slash_like_spin() {
        let r = router(&[("/test/...", "c")]);
        let info = |p: &str| r.route(p).unwrap().path_info;
        assert_eq!(info("/test"), "");
        assert_eq!(info("/test/"), "/");
        assert_eq!(info("/test/hello"), "/hello");
        assert_eq!(info("/test/hello/"), "/hello/");
    }

    #[test]
    fn headers_match_spins_documented_values() {
        // Spin's own header test: route /foo/:userid/..., request /foo/42/bar?key1=value1.
        let r = router(&[("/foo/:userid/...", "c")]);
        let m = r.route("/foo/42/bar").unwrap();
        let addr: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        let headers: HashMap<String, String> = m
            .spin_headers("fermyon.dev", "/foo/42/bar?key1=value1", addr)
            .into_iter()
            .collect();
        assert_eq!(
            headers["spin-full-url"],
            "http://fermyon.dev/foo/42/bar?key1=value1"
        );
        assert_eq!(headers["spin-path-info"], "/bar");
        assert_eq!(headers["spin-matched-route"], "/foo/:userid/...");
        assert_eq!(headers["spin-base-path"], "/");
        assert_eq!(headers["spin-raw-component-route"], "/foo/:userid/...");
        assert_eq!(headers["spin-component-route"], "/foo/:userid");
        assert_eq!(headers["spin-client-addr"], "127.0.0.1:8777");
        assert_eq!(headers["spin-path-match-userid"], "42");
    }

    #[test]
    fn param_names_with_underscores_become_dashes() {
        let r = router(&[("/:path_segment/:path_end/...", "c")]);
        let m = r.route("/path/end/rest").unwrap();
        let headers: HashMap<String, String> = m
            .spin_headers("h", "/path/end/rest", "127.0.0.1:1".parse().unwrap())
            .into_iter()
            .collect();
        assert_eq!(headers["spin-path-match-path-segment"], "path");
        assert_eq!(headers["spin-path-match-path-end"], "end");
        assert_eq!(headers["spin-path-info"], "/rest");
    }
}
