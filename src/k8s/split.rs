//! The `TrafficSplit` custom resource (`mc.dev/v1alpha1`, the shape of SMI `split.smi-spec.io`
//! v1alpha2): clients call the apex Service, mc's gateway spreads their connections over the
//! backends by weight. The CRD YAML that `mc install` renders is generated from this type.
//!
//! The spec is the user's; the status is the mirror controller's: the outbound gateway port
//! allocated for each apex port, and each backend's effective weight with the reason it differs
//! from the spec (Service missing, its cluster's gateway not alive, ...). The gateway routes by
//! the status, so that one place decides.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Split the connections to an apex Service over local Services and mirrors, by weight.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "mc.dev",
    version = "v1alpha1",
    kind = "TrafficSplit",
    plural = "trafficsplits",
    shortname = "ts",
    namespaced,
    status = "TrafficSplitStatus",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#,
    printcolumn = r#"{"name":"Weights","type":"string","jsonPath":".status.weights"}"#,
    printcolumn = r#"{"name":"Conflict","type":"string","jsonPath":".status.conflict"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplitSpec {
    /// The apex Service (in the split's namespace) that clients call. It must have no selector
    /// (mc points its EndpointSlice at the gateway); mc creates it when it does not exist.
    pub service: String,
    /// Services in the split's namespace (local ones and mirrors) that receive the connections.
    pub backends: Vec<TrafficSplitBackend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplitBackend {
    pub service: String,
    /// Relative weight; 0 takes the backend out.
    pub weight: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplitStatus {
    /// Outbound gateway port of each apex port (the apex's EndpointSlice points there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<SplitPort>,
    /// Each backend as it is routed now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendStatus>,
    /// The effective weights in one line, `service=weight,...` (the printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// Why the split is not routed at all (apex Service owned by someone else, no free port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitPort {
    /// Port of the apex Service.
    pub port: u16,
    /// The local gateway's outbound port that serves it.
    pub gateway_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    pub service: String,
    /// The weight in the spec.
    pub weight: u32,
    /// The weight the gateway uses now.
    pub effective_weight: u32,
    /// The cluster whose gateway serves this backend (mirrors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Why the effective weight differs from the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
