//! The errors of starting and describing a simulated cluster.

use std::net::SocketAddr;

use super::api::pki;
use super::node;
use super::semantics::token;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not create the certificates of simulated cluster {name}")]
    Pki {
        name: String,
        #[source]
        source: pki::PkiError,
    },
    #[error("could not listen on {addr} for simulated cluster {name}; is the address in use?")]
    Bind {
        name: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not build a kube client for simulated cluster {name}")]
    Client {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("could not read the generated kubeconfig of simulated cluster {name}")]
    Kubeconfig {
        name: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("could not start the node of simulated cluster {name}")]
    Node {
        name: String,
        #[source]
        source: node::NodeError,
    },
    #[error("could not sign the service-account token key of simulated cluster {name}")]
    Token {
        name: String,
        source: token::TokenError,
    },
    #[error("could not serialize the kubeconfig for {path}")]
    SerializeKubeconfig {
        path: String,
        #[source]
        source: serde_saphyr::SerializeError,
    },
    #[error(
        "could not write the kubeconfig {path}; check that its directory exists and is writable"
    )]
    WriteKubeconfig {
        path: String,
        #[source]
        source: Box<crate::identity::store::StoreError>,
    },
}
