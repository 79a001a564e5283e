//! Facade for the Kubernetes names mc uses: the one place for label, annotation and object names.

pub mod kubeconfig;
pub mod link;

pub use link::{Link, LinkSpec, LinkStatus};

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
