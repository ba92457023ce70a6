//! Per-component permissions derived from the manifest, shared by all of its instances.

use crate::allowed_hosts::AllowedHosts;
use crate::kv::KvStores;
use crate::variables::Variables;
use std::collections::HashSet;
use std::sync::Arc;

/// Everything a component's host calls are checked against; built once at startup.
#[derive(Debug)]
pub struct ComponentContext {
    /// The component id (`[component.<id>]`).
    pub id: String,
    /// Labels listed in `key_value_stores`.
    pub key_value_stores: HashSet<String>,
    /// The application's stores.
    pub kv: Arc<KvStores>,
    /// The application's resolved variables.
    pub variables: Arc<Variables>,
    /// Parsed, template-expanded `allowed_outbound_hosts`.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// `environment` entries, visible through `wasi:cli/environment`.
    pub environment: Vec<(String, String)>,
}
