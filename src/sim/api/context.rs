//! The types every handler shares: the per-cluster `Shared` state (built once, with its
//! listening socket), the per-request `Ctx`, the parsed `RequestInfo` and the `Reply`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::Value;
use tokio::net::TcpListener;

use super::faults::Faults;
use super::pki::{self, ClusterPki};
use crate::sim::cluster::clock::now_unix;
use crate::sim::cluster::controllers::{self, NamespaceRemoval, NodeSettings};
use crate::sim::cluster::registry::Registry;
use crate::sim::cluster::store::{State, Store, meta_str};
use crate::sim::config::SimConfig;
use crate::sim::error::SimError;
use crate::sim::node::{self, NodeShared};
use crate::sim::semantics::rbac::UserInfo;
use crate::sim::semantics::token::{ServiceAccountClaims, TokenSigner};

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The audience of tokens meant for the API server itself.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Everything a request handler needs; one per cluster.
pub struct Shared {
    pub config: SimConfig,
    pub pki: ClusterPki,
    pub admin_token: String,
    pub store: Arc<Store>,
    pub signer: Arc<TokenSigner>,
    pub faults: Faults,
    pub issuer: String,
    /// What the controllers know of the cluster (see `controllers::run`).
    pub controllers: controllers::Settings,
    /// The node's state shared with handlers (`pods/log`), when the cluster has a node.
    pub node: OnceLock<Arc<NodeShared>>,
    addr: SocketAddr,
}

impl Shared {
    pub async fn new(config: SimConfig) -> Result<(Arc<Shared>, TcpListener), SimError> {
        let bind_error = |source| SimError::Bind {
            name: config.name.clone(),
            addr: config.addr,
            source,
        };
        let listener = crate::runtime::listen(config.addr).map_err(bind_error)?;
        // The `kubernetes` Service and LoadBalancer addresses name the real port and IP.
        let addr = listener.local_addr().map_err(bind_error)?;
        let pki =
            pki::generate(&config.name, &[config.addr.ip()]).map_err(|source| SimError::Pki {
                name: config.name.clone(),
                source,
            })?;
        let issuer = API_AUDIENCE.to_string();
        let signer =
            Arc::new(
                TokenSigner::generate(&issuer).map_err(|source| SimError::Token {
                    name: config.name.clone(),
                    source,
                })?,
            );
        let store = Arc::new(Store::new(
            Registry::builtin(),
            config.history_capacity,
            config.watch_buffer,
        ));
        store.lock().history_bytes_cap = config.history_bytes;
        let admin_token = format!("mc-sim-admin-{}", uuid::Uuid::new_v4().simple());
        let faults = Faults::new(store.clone());
        let controllers = controllers::Settings {
            cluster_ip_base: config.cluster_ip_base,
            api_port: addr.port(),
            load_balancer_ip: config.load_balancer_ip.unwrap_or(addr.ip()),
            node: config.node.as_ref().map(|_| NodeSettings {
                name: node::node_name(&config),
                load_balancer_ip_base: node::load_balancer_ip_base(&config),
            }),
            ca_pem: pki.ca_pem.clone(),
            signer: signer.clone(),
        };
        controllers::seed(&controllers, &mut store.lock());
        let shared = Arc::new(Shared {
            config,
            pki,
            admin_token,
            store,
            signer,
            faults,
            issuer,
            controllers,
            node: OnceLock::new(),
            addr,
        });
        Ok((shared, listener))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lets the controllers react to what was just written, before the lock is released.
    pub fn settle(&self, state: &mut State) {
        controllers::run(&self.controllers, state);
    }

    /// Finishes a terminating namespace once `SimConfig::namespace_deletion_delay` has passed.
    pub fn schedule_namespace_removal(self: &Arc<Self>, removal: NamespaceRemoval) {
        let shared = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared.config.namespace_deletion_delay).await;
            let mut state = shared.store.lock();
            controllers::finish_namespace_removal(&shared.controllers, &mut state, &removal);
        });
    }

    /// A bound token for an existing ServiceAccount (None if it does not exist).
    pub fn issue_token(&self, namespace: &str, name: &str, ttl: Duration) -> Option<String> {
        let sa = self.store.lock().get("/serviceaccounts", namespace, name)?;
        let now = now_unix();
        let claims = ServiceAccountClaims {
            issuer: self.issuer.clone(),
            audiences: vec![API_AUDIENCE.to_string()],
            expires_at: now + ttl.as_secs() as i64,
            issued_at: now,
            namespace: namespace.to_string(),
            service_account_name: name.to_string(),
            service_account_uid: meta_str(&sa, "uid").to_string(),
            secret_name: None,
            secret_uid: None,
        };
        self.signer.sign(&claims).ok()
    }
}

/// The parsed target of a request under `/api` or `/apis`.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// Per-request data handed to handlers.
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub user: UserInfo,
    pub body: Bytes,
    /// Sent back as `Warning:` headers (e.g. unknown fields under `fieldValidation=Warn`).
    pub warnings: Warnings,
}

/// The warnings of one request, shared between its handler and the response writer.
#[derive(Clone, Default)]
pub struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    pub fn add(&self, text: impl Into<String>) {
        if let Ok(mut w) = self.0.lock() {
            w.push(text.into());
        }
    }

    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

impl Ctx {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    pub fn q_bool(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true") | Some("1"))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn wants_table(&self) -> bool {
        let accept = self.header("accept");
        accept.contains("as=Table")
    }

    pub fn is_admin(&self) -> bool {
        self.user.groups.iter().any(|g| g == "system:masters")
    }
}

/// What a handler answers: a JSON body, or a streaming body (watch).
pub enum Reply {
    Json {
        code: u16,
        body: Value,
        content_type: &'static str,
    },
    Stream {
        body: Body,
        content_type: &'static str,
    },
    Text {
        code: u16,
        body: String,
    },
    /// Pre-serialized JSON (large lists).
    Bytes {
        code: u16,
        body: Bytes,
        content_type: &'static str,
    },
}

impl Reply {
    pub fn json(code: u16, body: Value) -> Self {
        Reply::Json {
            code,
            body,
            content_type: "application/json",
        }
    }
}

pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}
