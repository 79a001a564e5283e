//! The `Link` custom resource: the contract between `mc link`, the mirror controller, the gateway
//! and `mc check`. The CRD YAML that `mc install` renders is generated from this type.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A directed link: the cluster holding this object mirrors and calls the target's exported services.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mc.dev",
    version = "v1alpha1",
    kind = "Link",
    plural = "links",
    namespaced,
    status = "LinkStatus",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetClusterName"}"#,
    printcolumn = r#"{"name":"Alive","type":"boolean","jsonPath":".status.gateway.alive"}"#,
    printcolumn = r#"{"name":"Services","type":"integer","jsonPath":".status.mirroredServices"}"#,
    printcolumn = r#"{"name":"Latency-P50","type":"integer","jsonPath":".status.gateway.latencyMs.p50"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LinkSpec {
    pub target_cluster_name: String,
    #[serde(default = "default_cluster_domain")]
    pub target_cluster_domain: String,
    #[serde(default = "default_cluster_domain")]
    pub target_trust_domain: String,
    /// URL of the target API server as reachable from the source cluster.
    pub api_server: String,
    /// Secret (in the Link's namespace) whose `kubeconfig` key reads the target.
    pub credentials_secret: String,
    /// Hosts (IP or DNS name) of the target gateway.
    pub gateway_addresses: Vec<String>,
    #[serde(default = "default_gateway_port")]
    pub gateway_port: u16,
    /// DNS SAN the target gateway must present.
    pub gateway_identity: String,
    #[serde(default)]
    pub probe: ProbeSpec,
    /// Label selector of the target's exported services.
    #[serde(default = "default_selector")]
    pub selector: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    pub port: u16,
    pub path: String,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        Self {
            port: crate::k8s::GATEWAY_PROBE_PORT,
            path: "/ready".into(),
            period_seconds: 3,
            timeout_seconds: 2,
            failure_threshold: 3,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrored_services: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}

/// A condition in the Kubernetes convention (`type`, `status`, `reason`, `message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    pub alive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyMs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<String>,
    #[serde(default)]
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencyMs {
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Conflict {
    /// `namespace/name` of the local object that blocks the mirror.
    pub service: String,
    pub reason: String,
}

/// Condition types of a Link.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const REMOTE_REACHABLE: &str = "RemoteReachable";
    pub const GATEWAY_ALIVE: &str = "GatewayAlive";
}

fn default_cluster_domain() -> String {
    "cluster.local".into()
}

fn default_gateway_port() -> u16 {
    crate::k8s::GATEWAY_PORT
}

fn default_selector() -> String {
    format!("{}=true", crate::k8s::LABEL_EXPORTED)
}
