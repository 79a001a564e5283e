//! Facade for Kubernetes: the types mc uses, label, annotation and object names, the typed
//! `mc-config`, the `Link` and `TrafficSplit` CRDs (the Rust type is the source of the rendered YAML) and the one
//! DNS-1123 validator. No I/O.

pub mod config;
pub mod link;
pub mod names;
pub mod split;

pub use config::{McConfig, McConfigError};
pub use link::{Link, LinkSpec, LinkStatus};
pub use split::{TrafficSplit, TrafficSplitSpec, TrafficSplitStatus};

// The Kubernetes types mc uses, from one place.
pub use k8s_openapi::api::apps::v1::Deployment;
pub use k8s_openapi::api::coordination::v1::Lease;
pub use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, Pod, Secret, Service, ServiceAccount, ServicePort, ServiceSpec,
};
pub use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
pub use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject,
};
pub use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
pub use kube::api::ObjectMeta;

/// API group of mc's own resources.
pub const GROUP: &str = "mc.dev";
/// Default namespace of an installation.
pub const DEFAULT_NAMESPACE: &str = "mc-system";
/// The one field manager mc writes with (server-side apply).
pub const FIELD_MANAGER: &str = "mc";

pub const LABEL_EXPORTED: &str = "mc.dev/exported";
pub const LABEL_MIRROR_OF: &str = "mc.dev/mirror-of";
pub const ANNOTATION_REMOTE_SERVICE: &str = "mc.dev/remote-service";
pub const ANNOTATION_REMOTE_RESOURCE_VERSION: &str = "mc.dev/remote-resource-version";
pub const ANNOTATION_GATEWAY_PORTS: &str = "mc.dev/gateway-ports";

pub const CONFIG_MAP: &str = "mc-config";
pub const ISSUER_SECRET: &str = "mc-issuer";
pub const GATEWAY_NAME: &str = "mc-gateway";
pub const MIRROR_NAME: &str = "mc-mirror";
pub const REMOTE_ACCESS_ROLE: &str = "mc-remote-access";
pub const GATEWAY_PORT: u16 = 4143;
pub const GATEWAY_PROBE_PORT: u16 = 4191;
pub const MIRROR_ADMIN_PORT: u16 = 9990;
/// Label on every object `mc install` renders: the cluster name it was installed with.
pub const LABEL_CLUSTER: &str = "mc.dev/cluster";
/// Lease the mirror controller's replicas elect a leader with (RBAC names it).
pub const MIRROR_LEASE: &str = "mc-mirror";

/// Finalizer the mirror controller puts on each Link: deleting a Link first removes its mirrors.
pub const LINK_FINALIZER: &str = "mc.dev/mirrors";
/// Type and key of the Secret (in the source) holding a link's kubeconfig for the target.
pub const LINK_SECRET_TYPE: &str = "mc.dev/remote-kubeconfig";
pub const LINK_SECRET_KEY: &str = "kubeconfig";
/// `managed-by` value on the EndpointSlices of mirrors (label `endpointslice.kubernetes.io/managed-by`).
/// A label value cannot contain '/', so it is written the way Kubernetes' own controller names
/// itself (`endpointslice-controller.k8s.io`).
pub const LABEL_SLICE_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const SLICE_MANAGER: &str = "mirror.mc.dev";
/// `managed-by` value on the EndpointSlices of TrafficSplit apex Services.
pub const SPLIT_SLICE_MANAGER: &str = "split.mc.dev";
/// Label on an apex Service mc created for a TrafficSplit (value: the split's name).
pub const LABEL_SPLIT_OF: &str = "mc.dev/split-of";
/// Label `kubernetes.io/service-name` of an EndpointSlice: the Service it belongs to.
pub const LABEL_SLICE_SERVICE: &str = "kubernetes.io/service-name";

/// `Secret mc-link-<target>` in the source: the link's credentials.
pub fn link_secret_name(target: &str) -> String {
    format!("mc-link-{target}")
}

/// `ServiceAccount mc-remote-access-<source>` in the target, one per source cluster, so that
/// each source's access can be revoked alone. Its bindings carry the same name.
pub fn remote_access_account(source: &str) -> String {
    format!("{REMOTE_ACCESS_ROLE}-{source}")
}

/// The TCP ports of a Service (the only protocol the gateways carry), with their port numbers
/// as `u16`; ports of other protocols or out of range are left out.
pub fn tcp_ports(svc: &Service) -> impl Iterator<Item = (&ServicePort, u16)> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP"))
        .filter_map(|p| Some((p, u16::try_from(p.port).ok()?)))
}
