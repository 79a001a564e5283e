//! `ConfigMap mc-config`: an installation's public configuration, typed. `mc install` renders it
//! with these key names (the template reads them from [`McConfig::template_keys`]), the gateway
//! and the mirror controller read it, and `mc link` reads the target's over the API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::CONFIG_MAP;

pub const KEY_CLUSTER_NAME: &str = "clusterName";
pub const KEY_TRUST_DOMAIN: &str = "trustDomain";
pub const KEY_GATEWAY_IDENTITY: &str = "gatewayIdentity";
pub const KEY_OUTBOUND_PORT_RANGE: &str = "outboundPortRange";
pub const KEY_CA_BUNDLE: &str = "ca-bundle.crt";

/// Keys of the issuer Secret (`kubernetes.io/tls`).
pub const ISSUER_KEY_CERT: &str = "tls.crt";
pub const ISSUER_KEY_KEY: &str = "tls.key";
pub const ISSUER_KEY_CA: &str = "ca.crt";

pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
pub const DEFAULT_OUTBOUND_PORTS: (u16, u16) = (10000, 19999);

/// What `mc-config` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McConfig {
    pub cluster_name: String,
    pub trust_domain: String,
    /// The DNS SAN this cluster's gateway presents (absent in old installs: derived).
    pub gateway_identity: Option<String>,
    /// Inclusive range of outbound gateway ports the mirror controller allocates from.
    pub outbound_ports: (u16, u16),
    /// PEM bundle of the trust anchors.
    pub ca_bundle: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum McConfigError {
    #[error("ConfigMap {namespace}/{CONFIG_MAP} has no key {key}; re-run `mc install`")]
    MissingKey {
        namespace: String,
        key: &'static str,
    },
    #[error(
        "ConfigMap {namespace}/{CONFIG_MAP} key {KEY_OUTBOUND_PORT_RANGE} is {value:?}, not a port range like 10000-19999; fix it with `mc install --set gateway.outboundPortRange=...`"
    )]
    PortRange { namespace: String, value: String },
}

impl McConfig {
    /// Parses a `mc-config` ConfigMap (`namespace` is only for messages).
    pub fn from_config_map(cm: &ConfigMap, namespace: &str) -> Result<McConfig, McConfigError> {
        let empty = BTreeMap::new();
        let data = cm.data.as_ref().unwrap_or(&empty);
        let get = |key: &'static str| data.get(key).filter(|v| !v.trim().is_empty());
        let required = |key: &'static str| {
            get(key).cloned().ok_or_else(|| McConfigError::MissingKey {
                namespace: namespace.to_owned(),
                key,
            })
        };
        let outbound_ports = match get(KEY_OUTBOUND_PORT_RANGE) {
            None => DEFAULT_OUTBOUND_PORTS,
            Some(v) => parse_port_range(v).ok_or_else(|| McConfigError::PortRange {
                namespace: namespace.to_owned(),
                value: v.clone(),
            })?,
        };
        Ok(McConfig {
            cluster_name: required(KEY_CLUSTER_NAME)?,
            trust_domain: get(KEY_TRUST_DOMAIN)
                .cloned()
                .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned()),
            gateway_identity: get(KEY_GATEWAY_IDENTITY).cloned(),
            outbound_ports,
            ca_bundle: required(KEY_CA_BUNDLE)?,
        })
    }

    /// The key names, for the install template (`config.yaml`).
    pub fn template_keys() -> serde_json::Value {
        serde_json::json!({
            "clusterName": KEY_CLUSTER_NAME,
            "trustDomain": KEY_TRUST_DOMAIN,
            "gatewayIdentity": KEY_GATEWAY_IDENTITY,
            "outboundPortRange": KEY_OUTBOUND_PORT_RANGE,
            "caBundle": KEY_CA_BUNDLE,
            "issuerCert": ISSUER_KEY_CERT,
            "issuerKey": ISSUER_KEY_KEY,
            "issuerCa": ISSUER_KEY_CA,
        })
    }
}

/// `first-last`, inclusive, `0 < first <= last`.
pub fn parse_port_range(v: &str) -> Option<(u16, u16)> {
    let (a, b) = v.trim().split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(pairs: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn a_full_config_parses_and_defaults_fill_the_optional_keys() {
        let c = McConfig::from_config_map(
            &cm(&[("clusterName", "west"), ("ca-bundle.crt", "PEM")]),
            "mc-system",
        )
        .unwrap();
        assert_eq!(c.cluster_name, "west");
        assert_eq!(c.trust_domain, "cluster.local");
        assert_eq!(c.outbound_ports, (10000, 19999));
        let c = McConfig::from_config_map(
            &cm(&[
                ("clusterName", "west"),
                ("ca-bundle.crt", "PEM"),
                ("outboundPortRange", "20000-20009"),
            ]),
            "mc-system",
        )
        .unwrap();
        assert_eq!(c.outbound_ports, (20000, 20009));
    }

    #[test]
    fn missing_keys_and_bad_ranges_are_named() {
        let e = McConfig::from_config_map(&cm(&[("clusterName", "west")]), "ns").unwrap_err();
        assert!(e.to_string().contains("ca-bundle.crt"), "{e}");
        let e = McConfig::from_config_map(
            &cm(&[
                ("clusterName", "west"),
                ("ca-bundle.crt", "x"),
                ("outboundPortRange", "9-1"),
            ]),
            "ns",
        )
        .unwrap_err();
        assert!(matches!(e, McConfigError::PortRange { .. }), "{e}");
    }
}
