//! ServiceAccount tokens as kube-apiserver issues them: compact JWS, ES256 (ECDSA P-256 with
//! SHA-256, signature in the fixed `r || s` form JWS requires), with the real claim names
//! (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `kubernetes.io`). Bound tokens from the
//! TokenRequest API expire; legacy Secret tokens (`expires_at == i64::MAX`) carry no `exp`.
//!
//! This module only signs and checks signature, issuer and time. Whether the bound
//! ServiceAccount/Secret still exists with the same uid, and the audience, are the server's
//! checks: they need the store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Issuer of legacy Secret-based tokens, which kube-apiserver keeps accepting.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// `expires_at` of tokens that never expire (legacy Secret tokens).
pub const NO_EXPIRY: i64 = i64::MAX;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("could not generate the service account signing key")]
    GenerateKey,
    #[error("could not load the generated service account signing key")]
    LoadKey,
    #[error("could not sign the service account token")]
    Sign,
    #[error("could not encode the token claims")]
    EncodeClaims(#[source] serde_json::Error),
    #[error("token is not a compact JWS (header.payload.signature)")]
    NotJws,
    #[error("token {part} is not valid base64url")]
    Base64 { part: &'static str },
    #[error("token {part} is not valid JSON")]
    Json {
        part: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("token is signed with {0:?}, only ES256 is accepted")]
    Algorithm(String),
    #[error("token signature is invalid")]
    Signature,
    #[error("token issuer {0:?} is not this cluster's issuer")]
    Issuer(String),
    #[error("token subject {0:?} is not a service account")]
    Subject(String),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

/// What a ServiceAccount token asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Unix seconds; [`NO_EXPIRY`] for legacy Secret tokens.
    pub expires_at: i64,
    pub issued_at: i64,
    pub namespace: String,
    pub service_account_name: String,
    pub service_account_uid: String,
    pub secret_name: Option<String>,
    pub secret_uid: Option<String>,
}

impl ServiceAccountClaims {
    /// The username the token authenticates as.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account_name
        )
    }
}

#[derive(Serialize, Deserialize)]
struct Ref {
    name: String,
    uid: String,
}

#[derive(Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Ref,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    secret: Option<Ref>,
}

#[derive(Serialize, Deserialize)]
struct WireClaims {
    aud: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    exp: Option<i64>,
    iat: i64,
    iss: String,
    #[serde(default)]
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
    nbf: i64,
    sub: String,
}

/// An ES256 signing key and the issuer it signs for.
pub struct TokenSigner {
    issuer: String,
    key: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed.
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A fresh P-256 key for `issuer` (e.g. `https://kubernetes.default.svc.cluster.local`).
    pub fn generate(issuer: &str) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TokenError::GenerateKey)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| TokenError::LoadKey)?;
        // Like kube-apiserver, the key id is derived from the public key, so that verifiers
        // can pick the key from a JWKS.
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(Self {
            issuer: issuer.to_string(),
            key,
            key_id,
            rng,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as a JWK Set (what `/openid/v1/jwks` serves).
    pub fn jwks(&self) -> Value {
        // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
        let point = self.key.public_key().as_ref();
        let coords = point.get(1..).unwrap_or_default();
        let (x, y) = coords.split_at(coords.len() / 2);
        json!({"keys":[{"use":"sig","kty":"EC","kid":self.key_id,"crv":"P-256","alg":"ES256",
                         "x":URL_SAFE_NO_PAD.encode(x),"y":URL_SAFE_NO_PAD.encode(y)}]})
    }

    pub fn sign(&self, claims: &ServiceAccountClaims) -> Result<String, TokenError> {
        let header = json!({"alg":"ES256","kid":self.key_id});
        let wire = WireClaims {
            aud: claims.audiences.clone(),
            exp: (claims.expires_at != NO_EXPIRY).then_some(claims.expires_at),
            iat: claims.issued_at,
            iss: claims.issuer.clone(),
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaims {
                namespace: claims.namespace.clone(),
                serviceaccount: Ref {
                    name: claims.service_account_name.clone(),
                    uid: claims.service_account_uid.clone(),
                },
                secret: match (&claims.secret_name, &claims.secret_uid) {
                    (Some(name), uid) => Some(Ref {
                        name: name.clone(),
                        uid: uid.clone().unwrap_or_default(),
                    }),
                    _ => None,
                },
            },
            nbf: claims.issued_at,
            sub: claims.username(),
        };
        let payload = serde_json::to_vec(&wire).map_err(TokenError::EncodeClaims)?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| TokenError::Sign)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Checks the signature, the issuer (this signer's or the legacy one), `exp` and `nbf`.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<ServiceAccountClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::NotJws);
        };
        let decode = |s: &str, part| {
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| TokenError::Base64 { part })
        };
        let header_json: Value =
            serde_json::from_slice(&decode(header, "header")?).map_err(|source| {
                TokenError::Json {
                    part: "header",
                    source,
                }
            })?;
        // Checking alg before the signature rules out "none" and algorithm confusion.
        let alg = header_json.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "ES256" {
            return Err(TokenError::Algorithm(alg.to_string()));
        }
        let signature = decode(signature, "signature")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(
                &token.as_bytes()[..header.len() + 1 + payload.len()],
                &signature,
            )
            .map_err(|_| TokenError::Signature)?;
        let wire: WireClaims =
            serde_json::from_slice(&decode(payload, "payload")?).map_err(|source| {
                TokenError::Json {
                    part: "payload",
                    source,
                }
            })?;
        if wire.iss != self.issuer && wire.iss != LEGACY_ISSUER {
            return Err(TokenError::Issuer(wire.iss));
        }
        let expires_at = wire.exp.unwrap_or(NO_EXPIRY);
        if now_unix >= expires_at {
            return Err(TokenError::Expired);
        }
        if now_unix < wire.nbf {
            return Err(TokenError::NotYetValid);
        }
        let k = wire.kubernetes;
        let claims = ServiceAccountClaims {
            issuer: wire.iss,
            audiences: wire.aud,
            expires_at,
            issued_at: wire.iat,
            namespace: k.namespace,
            service_account_name: k.serviceaccount.name,
            service_account_uid: k.serviceaccount.uid,
            secret_name: k.secret.as_ref().map(|s| s.name.clone()),
            secret_uid: k.secret.map(|s| s.uid),
        };
        if wire.sub != claims.username() {
            return Err(TokenError::Subject(wire.sub));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
    const NOW: i64 = 1_764_000_000;

    fn claims() -> ServiceAccountClaims {
        ServiceAccountClaims {
            issuer: ISSUER.into(),
            audiences: vec!["foo".into()],
            expires_at: NOW + 600,
            issued_at: NOW,
            namespace: "mc-system".into(),
            service_account_name: "mc-remote-access-east".into(),
            service_account_uid: "11111111-2222".into(),
            secret_name: None,
            secret_uid: None,
        }
    }

    fn decode_part(token: &str, i: usize) -> Value {
        let part = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn signed_token_verifies_and_carries_real_claim_names() {
        let signer = TokenSigner::generate(ISSUER).unwrap();
        let token = signer.sign(&claims()).unwrap();
        assert_eq!(signer.verify(&token, NOW + 1).unwrap(), claims());
        let header = decode_part(&token, 0);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], signer.key_id());
        let payload = decode_part(&token, 1);
        assert_eq!(payload["iss"], ISSUER);
        assert_eq!(
            payload["sub"],
            "system:serviceaccount:mc-system:mc-remote-access-east"
        );
        assert_eq!(payload["aud"], json!(["foo"]));
        assert_eq!(payload["exp"], NOW + 600);
        assert_eq!(payload["iat"], NOW);
        assert_eq!(payload["nbf"], NOW);
        assert_eq!(
            payload["kubernetes.io"],
            json!({"namespace":"mc-system","serviceaccount":{"name":"mc-remote-access-east","uid":"11111111-2222"}})
        );
        // JWS ES256 signatures are the 64-byte r||s, not DER.
        let sig = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(2).unwrap())
            .unwrap();
        assert_eq!(sig.len(), 64);
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_rejected() {
        let signer = TokenSigner::generate(ISSUER).unwrap();
        let token = signer.sign(&claims()).unwrap();
        assert!(matches!(
            signer.verify(&token, NOW + 600),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            signer.verify(&token, NOW - 1),
            Err(TokenError::NotYetValid)
        ));
    }

    #[test]
    fn legacy_secret_token_has_no_exp_and_never_expires() {
        let signer = TokenSigner::generate(ISSUER).unwrap();
        let c = ServiceAccountClaims {
            issuer: LEGACY_ISSUER.into(),
            expires_at: NO_EXPIRY,
            secret_name: Some("sa-token".into()),
            secret_uid: Some("s-uid".into()),
            ..claims()
        };
        let token = signer.sign(&c).unwrap();
        let payload = decode_part(&token, 1);
        assert!(payload.get("exp").is_none());
        assert_eq!(
            payload["kubernetes.io"]["secret"],
            json!({"name":"sa-token","uid":"s-uid"})
        );
        assert_eq!(signer.verify(&token, NOW + 10 * 365 * 86400).unwrap(), c);
    }

    #[test]
    fn tampered_payload_or_signature_is_rejected() {
        let signer = TokenSigner::generate(ISSUER).unwrap();
        let token = signer.sign(&claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        let mut forged = decode_part(&token, 1);
        forged["kubernetes.io"]["serviceaccount"]["name"] = json!("cluster-admin");
        forged["sub"] = json!("system:serviceaccount:mc-system:cluster-admin");
        let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
        let t = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(matches!(signer.verify(&t, NOW), Err(TokenError::Signature)));

        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
        assert!(matches!(signer.verify(&t, NOW), Err(TokenError::Signature)));

        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let t = format!("{none_header}.{}.", parts[1]);
        assert!(matches!(
            signer.verify(&t, NOW),
            Err(TokenError::Algorithm(_))
        ));

        for garbage in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &format!("{}.{}", parts[0], parts[1]),
        ] {
            assert!(signer.verify(garbage, NOW).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn token_from_another_signer_or_issuer_is_rejected() {
        let a = TokenSigner::generate(ISSUER).unwrap();
        let b = TokenSigner::generate(ISSUER).unwrap();
        let token = a.sign(&claims()).unwrap();
        assert!(matches!(b.verify(&token, NOW), Err(TokenError::Signature)));
        let other = ServiceAccountClaims {
            issuer: "https://elsewhere".into(),
            ..claims()
        };
        let token = a.sign(&other).unwrap();
        assert!(matches!(a.verify(&token, NOW), Err(TokenError::Issuer(_))));
    }

    #[test]
    fn jwks_publishes_the_verifying_key() {
        let signer = TokenSigner::generate(ISSUER).unwrap();
        let jwks = signer.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kid"], signer.key_id());
        let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap();
        assert_eq!((x.len(), y.len()), (32, 32));
        assert!(!format!("{signer:?}").contains("key:"));
    }
}
