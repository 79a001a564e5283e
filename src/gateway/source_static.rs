//! Static tables from a YAML file (`mc gateway --config FILE`), for tests and benchmarks where
//! no Kubernetes API is at hand. Relative paths are relative to the file's directory.
//!
//! ```yaml
//! cluster: west
//! trustDomain: cluster.local        # default
//! namespace: mc-system              # default
//! anchors: ca.crt                   # PEM bundle
//! issuerCert: issuer.crt
//! issuerKey: issuer.key
//! exports:                          # what the inbound side may dial
//!   - name: backend
//!     namespace: default
//!     ports: [{port: 8888, backend: "127.0.0.1:9000"}]
//! listeners:                        # outbound ports
//!   - port: 10001
//!     peer: east
//!     authority: backend.default.svc.cluster.local:8888
//! peers:
//!   - name: east
//!     address: 127.0.0.1:4143
//!     identity: mc-gateway.mc-system.east.cluster.local
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::config::{Listener, Peer, ServiceEntry, Tables};
use super::identity::{GatewayName, IssuerMaterial};
use super::{MaterialError, MaterialSource};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticConfig {
    pub cluster: String,
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub anchors: PathBuf,
    pub issuer_cert: PathBuf,
    pub issuer_key: PathBuf,
    #[serde(default)]
    pub exports: Vec<StaticExport>,
    #[serde(default)]
    pub listeners: Vec<StaticListener>,
    #[serde(default)]
    pub peers: Vec<StaticPeer>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticExport {
    pub name: String,
    pub namespace: String,
    pub ports: Vec<StaticPort>,
    /// `false` lists a known but unexported service (answers 403 instead of 404).
    #[serde(default = "yes")]
    pub exported: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPort {
    pub port: u16,
    pub backend: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticListener {
    pub port: u16,
    pub peer: String,
    pub authority: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPeer {
    pub name: String,
    pub address: String,
    pub identity: String,
}

fn default_trust_domain() -> String {
    "cluster.local".into()
}

fn default_namespace() -> String {
    crate::k8s::DEFAULT_NAMESPACE.into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("cannot read the gateway config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the gateway config {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("the gateway config {path} lists outbound port {port} twice")]
    DuplicatePort { path: PathBuf, port: u16 },
}

impl StaticConfig {
    pub fn load(path: &Path) -> Result<Self, StaticError> {
        let text = std::fs::read_to_string(path).map_err(|source| StaticError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: StaticConfig =
            serde_saphyr::from_str(&text).map_err(|source| StaticError::Parse {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.anchors,
            &mut config.issuer_cert,
            &mut config.issuer_key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for l in &config.listeners {
            if !seen.insert(l.port) {
                return Err(StaticError::DuplicatePort {
                    path: path.to_owned(),
                    port: l.port,
                });
            }
        }
        Ok(config)
    }

    pub fn name(&self) -> GatewayName {
        GatewayName {
            cluster: self.cluster.clone(),
            trust_domain: self.trust_domain.clone(),
            namespace: self.namespace.clone(),
        }
    }

    pub fn tables(&self) -> Tables {
        let mut t = Tables::default();
        for e in &self.exports {
            t.apply_service(
                &e.namespace,
                &e.name,
                ServiceEntry {
                    exported: e.exported,
                    backends: e
                        .ports
                        .iter()
                        .map(|p| (p.port, p.backend))
                        .collect::<HashMap<_, _>>(),
                },
            );
        }
        for l in &self.listeners {
            t.listeners.insert(
                l.port,
                Listener {
                    peer: l.peer.clone(),
                    authority: l.authority.clone(),
                },
            );
        }
        for p in &self.peers {
            t.peers.insert(
                p.name.clone(),
                Peer {
                    address: p.address.clone(),
                    identity: p.identity.clone(),
                },
            );
        }
        t
    }

    /// Reads the three PEM files now and again before every rotation, so replacing the files
    /// rotates the issuer without a restart.
    pub fn material(&self) -> MaterialSource {
        let files = Arc::new((
            self.anchors.clone(),
            self.issuer_cert.clone(),
            self.issuer_key.clone(),
        ));
        Arc::new(move || {
            let files = files.clone();
            Box::pin(async move {
                let read = |p: &PathBuf| {
                    std::fs::read_to_string(p).map_err(|source| MaterialError::File {
                        path: p.display().to_string(),
                        source,
                    })
                };
                Ok(IssuerMaterial {
                    anchors_pem: read(&files.0)?,
                    issuer_cert_pem: read(&files.1)?,
                    issuer_key_pem: read(&files.2)?,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_config_becomes_tables_with_relative_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        std::fs::write(
            &path,
            r#"
cluster: west
anchors: ca.crt
issuerCert: /abs/issuer.crt
issuerKey: issuer.key
exports:
  - name: backend
    namespace: default
    ports: [{port: 8888, backend: "127.0.0.1:9000"}]
  - name: private
    namespace: default
    exported: false
    ports: [{port: 80, backend: "127.0.0.1:9001"}]
listeners:
  - {port: 10001, peer: east, authority: "backend.default.svc.cluster.local:8888"}
peers:
  - {name: east, address: "127.0.0.1:4143", identity: mc-gateway.mc-system.east.cluster.local}
"#,
        )
        .unwrap();
        let c = StaticConfig::load(&path).unwrap();
        assert_eq!(c.anchors, dir.path().join("ca.crt"));
        assert_eq!(c.issuer_cert, PathBuf::from("/abs/issuer.crt"));
        assert_eq!(c.name().dns(), "mc-gateway.mc-system.west.cluster.local");
        let t = c.tables();
        assert_eq!(
            t.route_inbound("backend.default.svc.cluster.local:8888", "cluster.local"),
            Ok("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            t.route_inbound("private.default.svc.cluster.local:80", "cluster.local"),
            Err(super::super::config::Refusal::NotExported)
        );
        assert_eq!(t.listeners[&10001].peer, "east");
        assert_eq!(t.peers["east"].address, "127.0.0.1:4143");
    }

    #[test]
    fn unknown_keys_and_duplicate_ports_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.yaml");
        std::fs::write(
            &path,
            "cluster: w\nanchors: a\nissuerCert: b\nissuerKey: c\nbogus: 1\n",
        )
        .unwrap();
        assert!(matches!(
            StaticConfig::load(&path),
            Err(StaticError::Parse { .. })
        ));
        std::fs::write(
            &path,
            "cluster: w\nanchors: a\nissuerCert: b\nissuerKey: c\nlisteners:\n  - {port: 1, peer: p, authority: a}\n  - {port: 1, peer: p, authority: b}\n",
        )
        .unwrap();
        assert!(matches!(
            StaticConfig::load(&path),
            Err(StaticError::DuplicatePort { port: 1, .. })
        ));
    }
}
