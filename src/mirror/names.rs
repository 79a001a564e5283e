//! Mirror names: `<name>-<target>`, shortened deterministically with a hash when longer than a
//! Service name may be (63). The remote name is never parsed back out of a mirror's name: it is
//! in the `mc.dev/remote-service` annotation.

use crate::k8s::names::MAX_LABEL;

/// Hex digits of the hash suffix of a shortened name.
const HASH_LEN: usize = 10;

/// The mirror Service name for remote Service `name` of link `target`.
pub fn mirror_name(name: &str, target: &str) -> String {
    let full = format!("{name}-{target}");
    if full.len() <= MAX_LABEL {
        return full;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, full.as_bytes());
    let hash = hex::encode(&digest.as_ref()[..HASH_LEN / 2]);
    let keep = MAX_LABEL - HASH_LEN - 1;
    let prefix = full[..keep].trim_end_matches('-');
    format!("{prefix}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::names::is_dns1123_label;

    #[test]
    fn short_names_are_name_dash_target() {
        assert_eq!(mirror_name("backend-svc", "west"), "backend-svc-west");
    }

    #[test]
    fn long_names_are_shortened_to_a_valid_stable_distinct_label() {
        let a = mirror_name(&"a".repeat(60), "west");
        let b = mirror_name(&format!("{}b", "a".repeat(59)), "west");
        assert_eq!(a.len(), 63);
        assert!(is_dns1123_label(&a) && is_dns1123_label(&b), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, mirror_name(&"a".repeat(60), "west"));
        // A cut that lands on a '-' does not leave "--".
        let c = mirror_name(&format!("{}-{}", "x".repeat(51), "y".repeat(20)), "west");
        assert!(is_dns1123_label(&c) && !c.contains("--"), "{c}");
    }
}
