//! Weighted choice for TrafficSplit listeners, pure: which backend a new connection tries first,
//! and which next when that one cannot be reached. Per connection, not per request: the gateway
//! does not parse what flows inside (docs/traffic-split.md).
//!
//! ```text
//! accept on split port G ─▶ order(weights, up) ─▶ try 1st: dial ClusterIP | open tunnel
//!                                              └▶ on failure: 2nd, ... ─▶ none left: close
//! ```
//!
//! The weights are the effective ones from the split's status (0 for a backend the mirror
//! controller failed over); `up` adds what only this gateway knows now (its connection to a peer
//! is backing off), so traffic moves before the next probe says so.

use rand::Rng;

/// The order in which to try the backends of one connection: a weighted draw without
/// replacement among those with a weight above 0 that are up. Empty: refuse the connection.
pub fn order<R: Rng + ?Sized>(
    weights: &[u32],
    up: impl Fn(usize) -> bool,
    rng: &mut R,
) -> Vec<usize> {
    let mut left: Vec<(usize, u64)> = weights
        .iter()
        .enumerate()
        .filter(|(i, w)| **w > 0 && up(*i))
        .map(|(i, w)| (i, u64::from(*w)))
        .collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|(_, w)| w).sum();
        let mut x = rng.random_range(0..total);
        let at = left
            .iter()
            .position(|(_, w)| {
                if x < *w {
                    true
                } else {
                    x -= w;
                    false
                }
            })
            .unwrap_or(left.len() - 1);
        out.push(left.remove(at).0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn firsts(
        weights: &[u32],
        up: impl Fn(usize) -> bool + Copy,
        n: usize,
        seed: u64,
    ) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0; weights.len()];
        for _ in 0..n {
            if let Some(first) = order(weights, up, &mut rng).first() {
                counts[*first] += 1;
            }
        }
        counts
    }

    #[test]
    fn first_choices_follow_the_weights() {
        for (weights, seed) in [(vec![50, 50], 1), (vec![90, 10], 2), (vec![1, 2, 7], 3)] {
            let n = 20_000;
            let counts = firsts(&weights, |_| true, n, seed);
            let total: u32 = weights.iter().sum();
            for (i, w) in weights.iter().enumerate() {
                let want = f64::from(*w) / f64::from(total);
                let got = counts[i] as f64 / n as f64;
                assert!(
                    (got - want).abs() < 0.02,
                    "{weights:?}: backend {i} got {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn every_eligible_backend_is_tried_once_and_weight_zero_never() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            let mut o = order(&[3, 0, 5, 1], |_| true, &mut rng);
            o.sort();
            assert_eq!(o, vec![0, 2, 3]);
        }
    }

    #[test]
    fn a_backend_that_is_down_is_skipped() {
        let counts = firsts(&[50, 50], |i| i != 1, 1000, 4);
        assert_eq!(counts, vec![1000, 0]);
    }

    #[test]
    fn all_down_or_all_zero_refuses() {
        let mut rng = StdRng::seed_from_u64(5);
        assert!(order(&[50, 50], |_| false, &mut rng).is_empty());
        assert!(order(&[0, 0], |_| true, &mut rng).is_empty());
        assert!(order(&[], |_| true, &mut rng).is_empty());
    }

    #[test]
    fn a_live_weight_change_applies_to_the_next_connections() {
        // The gateway reads the weights of the current tables for every new connection.
        let mut rng = StdRng::seed_from_u64(6);
        let mut tables = vec![50u32, 50];
        let mut before = [0; 2];
        for _ in 0..2000 {
            before[order(&tables, |_| true, &mut rng)[0]] += 1;
        }
        tables = vec![0, 100];
        let mut after = [0; 2];
        for _ in 0..2000 {
            after[order(&tables, |_| true, &mut rng)[0]] += 1;
        }
        assert!(before[0] > 900 && before[1] > 900, "{before:?}");
        assert_eq!(after, [0, 2000]);
    }
}
