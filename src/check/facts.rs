//! What `mc check` gathers from a cluster before judging it: plain data, no I/O. Each field says
//! what was found or why it could not be read (`Err(reason)`), so that the rules can tell "absent"
//! from "unreadable" and name the object either way.

use std::collections::BTreeMap;

use crate::k8s::{Link, McConfig, TrafficSplit};

/// `Err(reason)` when the read itself failed (network, RBAC); the reason is shown to the user.
pub type Read<T> = Result<T, String>;

/// Everything read from one cluster (one kubeconfig context).
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    /// The context as the user named it (`(current)` for the current context).
    pub context: String,
    pub namespace: String,
    /// `/version`: `(major, minor, gitVersion)`. An error here means the API is unreachable and
    /// nothing else was read.
    pub version: Read<(u32, u32, String)>,
    /// The CustomResourceDefinitions mc installs, by name: `None` when absent, `Some(established)`.
    pub crds: Vec<(String, Read<Option<bool>>)>,
    /// RBAC objects `mc install` renders: `(kind, name, present)`.
    pub rbac_objects: Read<Vec<(String, String, bool)>>,
    /// What the components' ServiceAccounts may do (SelfSubjectAccessReview as each of them);
    /// `Err` when impersonation is not allowed to the caller.
    pub access: Read<Vec<AccessFact>>,
    /// `Some(why impersonation was refused)` when `access` was judged from the roles instead.
    pub access_by_rules: Option<String>,
    pub namespace_exists: Read<bool>,
    /// `None`: `mc-config` does not exist.
    pub config: Read<Option<Result<McConfig, String>>>,
    pub deployments: Vec<DeploymentFact>,
    /// `None`: the Service `mc-gateway` does not exist.
    pub gateway_service: Read<Option<GatewayServiceFact>>,
    /// PEM of `tls.crt` in `mc-issuer` (`None`: no Secret or no key).
    pub issuer_pem: Read<Option<String>>,
    /// DER chain the gateway presented on its TLS port, or why it could not be fetched; `None`
    /// when there was no address to dial.
    pub gateway_chain: Option<Read<Vec<Vec<u8>>>>,
    pub links: Read<Vec<LinkFacts>>,
    /// Local Services labelled `mc.dev/mirror-of`.
    pub mirrors: Read<Vec<MirrorFact>>,
    /// Services of this cluster matching the export label (`namespace/name`, is it a mirror).
    pub exported: Read<Vec<(String, bool)>>,
    /// ServiceAccounts `mc-remote-access-*` in the namespace (the sources linked to this cluster).
    pub remote_accounts: Read<Vec<String>>,
    /// TrafficSplits in every namespace.
    pub splits: Read<Vec<TrafficSplit>>,
}

impl ClusterFacts {
    /// Facts before anything is read: every read "not attempted" (the rules stop at the first
    /// failure that makes the rest meaningless, so these are never shown).
    pub fn unread(context: &str, namespace: &str) -> ClusterFacts {
        let no = || "not read".to_owned();
        ClusterFacts {
            context: context.to_owned(),
            namespace: namespace.to_owned(),
            version: Err(no()),
            crds: Vec::new(),
            rbac_objects: Err(no()),
            access: Err(no()),
            access_by_rules: None,
            namespace_exists: Err(no()),
            config: Err(no()),
            deployments: Vec::new(),
            gateway_service: Err(no()),
            issuer_pem: Err(no()),
            gateway_chain: None,
            links: Err(no()),
            mirrors: Err(no()),
            exported: Err(no()),
            remote_accounts: Err(no()),
            splits: Err(no()),
        }
    }
}

/// One SelfSubjectAccessReview as a component's ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFact {
    pub account: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    /// `None`: cluster-wide.
    pub namespace: Option<String>,
    pub allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFact {
    pub name: String,
    /// `Err`: could not be read; `Ok(None)`: absent.
    pub state: Read<Option<DeploymentState>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentState {
    pub desired: i32,
    pub available: i32,
    /// Message of the `Available` condition when it is not True.
    pub condition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayServiceFact {
    pub type_: String,
    /// Load-balancer ingress addresses, else external IPs, else the ClusterIP (for `ClusterIP`
    /// and `NodePort` Services).
    pub addresses: Vec<String>,
}

/// One Link and what belongs to it.
#[derive(Debug, Clone)]
pub struct LinkFacts {
    pub link: Link,
    /// The credentials Secret: `Ok(None)` when absent.
    pub credentials: Read<Option<Result<Credentials, String>>>,
    /// Events the controller recorded on the Link, newest first.
    pub events: Vec<LinkEvent>,
    /// The target as read by the user (another `--context`) or through the link's credentials
    /// (`--direct`); `None` when neither was asked for.
    pub remote: Option<RemoteView>,
}

/// A core/v1 Event on a Link (the mirror controller records one per condition transition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// RFC 3339 (`lastTimestamp`, else `eventTime`, else creation).
    pub time: Option<String>,
}

/// What the credentials Secret's kubeconfig holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `exp` of a JWT token (seconds since the epoch); `None` for tokens without one.
    pub token_expiry: Option<i64>,
    /// The kubeconfig's YAML, for `--direct`.
    pub kubeconfig: String,
}

/// The target of a Link, read live.
#[derive(Debug, Clone)]
pub struct RemoteView {
    /// `context west` or `the link's credentials`.
    pub via: String,
    pub config: Read<Option<Result<McConfig, String>>>,
    pub exported: Read<Vec<(String, bool)>>,
    /// `None` when it was not read (the link's credentials cannot list ServiceAccounts).
    pub remote_accounts: Option<Read<Vec<String>>>,
}

/// A local mirror Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFact {
    /// `namespace/name`.
    pub service: String,
    /// Label `mc.dev/mirror-of`.
    pub target: String,
    /// Annotation `mc.dev/remote-service` (`namespace/name`).
    pub remote: Option<String>,
    /// Annotation `mc.dev/gateway-ports`: service port → outbound port (`Err`: unparseable).
    pub gateway_ports: Result<BTreeMap<u16, u16>, String>,
    /// The mirror itself carries the export label (exporting it would make a daisy chain).
    pub exported: bool,
}
