//! Trust for mc: the anchor (root CA), per-cluster issuers (intermediate CAs) and gateway leaves.
//!
//! Pure except for [`store`], which reads and writes files (never the network). The pieces other
//! modules reuse are small: [`load_issuer`] turns a PEM cert+key into an rcgen `Issuer` for the
//! gateway's leaf minting, [`gateway_dns_name`] / [`gateway_spiffe_id`] name a gateway, and
//! [`verify_chain`] checks a leaf against anchors the way peers will (rustls-webpki).
//!
//! ```text
//! anchor (self-signed, CA, key stays offline, URI SAN spiffe://<trust-domain>)
//!   └── issuer of cluster <c> (CA pathLen 0, name-constrained to <c>.<trust-domain>)
//!         └── gateway leaf (24h, DNS mc-gateway.<ns>.<c>.<trust-domain> + SPIFFE URI)
//! ```

pub mod inspect;
pub mod names;
pub mod pki;
pub mod store;
pub mod verify;

pub use names::{
    NameError, gateway_dns_name, gateway_dns_name_in, gateway_spiffe_id, gateway_spiffe_id_in,
    validate_cluster_name, validate_trust_domain,
};
pub use pki::{
    CertKeyPem, PkiError, issue_gateway_leaf, load_issuer, new_anchor, new_issuer, trust_domain_of,
};
pub use verify::{ChainError, verify_ca_signed_by, verify_chain};

use std::time::Duration;

/// Trust domain used when `mc identity init` is not given one (also the default cluster domain).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// File names inside an identity directory.
pub const ANCHOR_CERT_FILE: &str = "anchor.crt";
pub const ANCHOR_KEY_FILE: &str = "anchor.key";
pub const ISSUER_CERT_FILE: &str = "issuer.crt";
pub const ISSUER_KEY_FILE: &str = "issuer.key";
/// Namespace part of a gateway identity when mc is installed in the default namespace (the
/// identity names the namespace the gateway really runs in; `mc-config` records the result).
pub const IDENTITY_NAMESPACE: &str = "mc-system";
pub const IDENTITY_SERVICE_ACCOUNT: &str = "mc-gateway";
/// Lifetime of a gateway leaf certificate.
pub const GATEWAY_LEAF_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default lifetimes of `mc identity init` and `mc identity issue`.
pub const DEFAULT_ANCHOR_VALIDITY: &str = "10y";
pub const DEFAULT_ISSUER_VALIDITY: &str = "1y";
