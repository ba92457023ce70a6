//! The subset of Spin's application manifest (v2) that gatecast's app uses.
//!
//! Why a parser of our own: the Spin CLI (and its `spin-manifest` crate's dependency tree) cannot be
//! installed here, yet the same `spin.toml` must run unchanged on real Spin in production. So this
//! module reads exactly the fields Spin reads for HTTP apps and rejects the forms we do not
//! implement (remote sources, inline components, non-HTTP triggers) instead of silently ignoring
//! them, so a manifest that works here is a manifest Spin also accepts.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {path}: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the v2 shape.
    #[error("invalid manifest {path}: {source}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// The TOML error (carries line and column).
        source: Box<toml::de::Error>,
    },
    /// `spin_manifest_version` is not 2.
    #[error("unsupported spin_manifest_version {0} (only 2 is supported)")]
    Version(i64),
    /// A trigger type other than `http` is present.
    #[error("unsupported trigger type {0:?} (only http)")]
    TriggerType(String),
    /// A trigger names a component that is not defined.
    #[error("trigger for route {route:?} refers to undefined component {component:?}")]
    UnknownComponent {
        /// The trigger's route.
        route: String,
        /// The missing component id.
        component: String,
    },
    /// `route = { private = false }`, which Spin rejects as neither a route nor private.
    #[error(
        "route must be a string pattern or {{ private = true }}: component {0:?} has {{ private = false }}"
    )]
    PrivateFalse(String),
    /// A variable declaration is both required and has a default (Spin rejects this too).
    #[error("variable {0:?} cannot be both required and have a default")]
    RequiredWithDefault(String),
}

/// A parsed `spin.toml`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Directory containing the manifest; component sources are relative to it.
    pub base_dir: PathBuf,
    /// `[application]`.
    pub application: Application,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]`, in manifest order (order matters for duplicate routes: last wins).
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.<id>]`, by id.
    pub components: BTreeMap<String, ComponentDecl>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Application {
    /// Application name.
    pub name: String,
    /// Application version, if given.
    #[serde(default)]
    pub version: Option<String>,
    /// Description, if given.
    #[serde(default)]
    pub description: Option<String>,
}

/// One `[variables]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value used when no provider (override or env) supplies one.
    #[serde(default)]
    pub default: Option<String>,
    /// Startup fails unless some provider supplies a value.
    #[serde(default)]
    pub required: bool,
    /// The value must never be logged.
    #[serde(default)]
    pub secret: bool,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The trigger's `id`, if given.
    pub id: Option<String>,
    /// The route pattern; `None` for `route = { private = true }` (not reachable over HTTP).
    pub route: Option<String>,
    /// Component id that handles the route.
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentDecl {
    /// Path of the `.wasm`, relative to the manifest directory.
    pub source: PathBuf,
    /// Component variables: name → template over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Outbound host patterns (may contain `{{ var }}` templates).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Environment variables visible to the component through WASI.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: i64,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<RawTrigger>>,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Deserialize)]
struct RawTrigger {
    #[serde(default)]
    id: Option<String>,
    route: RawRoute,
    component: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, base_dir).map_err(|err| match err {
            ManifestError::Parse { source, .. } => ManifestError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses manifest text; `base_dir` anchors relative component sources.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|source| ManifestError::Parse {
            path: PathBuf::new(),
            source: Box::new(source),
        })?;
        if raw.spin_manifest_version != 2 {
            return Err(ManifestError::Version(raw.spin_manifest_version));
        }
        for (name, decl) in &raw.variables {
            if decl.required && decl.default.is_some() {
                return Err(ManifestError::RequiredWithDefault(name.clone()));
            }
        }
        let mut http_triggers = Vec::new();
        for (kind, triggers) in raw.trigger {
            if kind != "http" {
                return Err(ManifestError::TriggerType(kind));
            }
            for trigger in triggers {
                let route = match trigger.route {
                    RawRoute::Path(path) => Some(path),
                    // Spin: `{ private = false }` is an error, `{ private = true }` is unroutable.
                    RawRoute::Private { private: true } => None,
                    RawRoute::Private { private: false } => {
                        return Err(ManifestError::PrivateFalse(trigger.component));
                    }
                };
                if !raw.component.contains_key(&trigger.component) {
                    return Err(ManifestError::UnknownComponent {
                        route: route.unwrap_or_default(),
                        component: trigger.component,
                    });
                }
                http_triggers.push(HttpTrigger {
                    id: trigger.id,
                    route,
                    component: trigger.component,
                });
            }
        }
        Ok(Self {
            base_dir,
            application: raw.application,
            variables: raw.variables,
            http_triggers,
            components: raw.component,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"

[variables]
signing_keys = { required = true, secret = true }
storage_origin = { default = "http://127.0.0.1:9000" }

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = { private = true }
component = "api"

[component.api]
source = "target/wasm32-wasip2/wasm/api.wasm"
variables = { keys = "{{ signing_keys }}" }
key_value_stores = ["default"]
allowed_outbound_hosts = ["{{ storage_origin }}"]
files = ["ignored/**"]
[component.api.build]
command = "cargo build"
"#;

    #[test]
    fn parses_the_fields_spin_reads() {
        let manifest = Manifest::parse(SAMPLE, PathBuf::from("/app")).unwrap();
        assert_eq!(manifest.application.name, "demo");
        assert!(manifest.variables["signing_keys"].required);
        assert!(manifest.variables["signing_keys"].secret);
        assert_eq!(manifest.http_triggers.len(), 2);
        assert_eq!(manifest.http_triggers[0].route.as_deref(), Some("/api/..."));
        assert_eq!(manifest.http_triggers[1].route, None);
        let api = &manifest.components["api"];
        assert_eq!(api.variables["keys"], "{{ signing_keys }}");
        assert_eq!(api.key_value_stores, ["default"]);
        assert_eq!(api.allowed_outbound_hosts, ["{{ storage_origin }}"]);
    }

    #[test]
    fn rejects_unknown_component_and_version() {
        let text = SAMPLE.replace("component = \"api\"\n\n[[", "component = \"nope\"\n\n[[");
        assert!(matches!(
            Manifest::parse(&text, PathBuf::new()),
            Err(ManifestError::UnknownComponent { .. })
        ));
        let text = SAMPLE.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(matches!(
            Manifest::parse(&text, PathBuf::new()),
            Err(ManifestError::Version(1))
        ));
    }

    #[test]
    fn rejects_required_with_default() {
        let text = SAMPLE.replace(
            "signing_keys = { required = true, secret = true }",
            "signing_keys = { required = true, default = \"x\" }",
        );
        assert!(matches!(
            Manifest::parse(&text, PathBuf::new()),
            Err(ManifestError::RequiredWithDefault(_))
        ));
    }

    #[test]
    fn rejects_non_http_triggers() {
        let text = format!("{SAMPLE}\n[[trigger.redis]]\nroute = \"x\"\ncomponent = \"api\"\n");
        assert!(matches!(
            Manifest::parse(&text, PathBuf::new()),
            Err(ManifestError::TriggerType(kind)) if kind == "redis"
        ));
    }
}
