//! Leader election on `Lease mc-mirror`: only the holder writes. Every replica watches and
//! plans; the executor runs only while `is_leader` is true.
//!
//! Optimistic concurrency does the locking: a replica takes or renews the Lease with a PUT that
//! carries the resourceVersion it read, so two replicas racing for it cannot both win. A replica
//! that cannot renew steps down before its lease could have expired for the others.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::k8s::{Lease, MIRROR_LEASE, ObjectMeta};

/// How long a holder's claim lasts without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and others look).
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// The decision for one look at the Lease. Pure.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder's claim expired: take it.
    Take,
    /// Someone else holds a live claim.
    Follow { holder: String },
}

/// What to do with `lease` as seen at `now` by `me`.
pub fn decide(lease: &Lease, me: &str, now: Timestamp) -> Step {
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::Take;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    let renewed = spec
        .renew_time
        .or(spec.acquire_time)
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let expires = renewed.as_second().saturating_add(duration);
    if now.as_second() > expires {
        Step::Take
    } else {
        Step::Follow { holder }
    }
}

fn claimed(mut lease: Lease, me: &str, now: Timestamp, taking: bool) -> Lease {
    let mut spec = lease.spec.take().unwrap_or_default();
    if taking {
        spec.lease_transitions =
            Some(spec.lease_transitions.unwrap_or(0) + i32::from(spec.holder_identity.is_some()));
        spec.acquire_time = Some(MicroTime(now));
    }
    spec.holder_identity = Some(me.to_owned());
    spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
    spec.renew_time = Some(MicroTime(now));
    lease.spec = Some(spec);
    lease
}

/// Runs the election until `cancel`; the receiver says whether this replica leads now. On
/// cancel a leader gives the Lease up so that another replica takes over at once; await the
/// handle before exiting so that the release is sent.
pub fn spawn(
    client: kube::Client,
    namespace: &str,
    me: String,
    cancel: CancellationToken,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let task = tokio::spawn(async move {
        let mut last_renewal: Option<Instant> = None;
        loop {
            let step = attempt(&api, &me).await;
            match step {
                Ok(true) => last_renewal = Some(Instant::now()),
                Ok(false) => last_renewal = None,
                Err(e) => {
                    tracing::warn!(error = %e, lease = MIRROR_LEASE, "cannot read or renew the leader Lease")
                }
            }
            // Step down before the others may consider our claim expired.
            let leading = last_renewal.is_some_and(|t| t.elapsed() < LEASE_DURATION - RENEW_EVERY);
            if *tx.borrow() != leading {
                tracing::info!(identity = %me, leading, "leadership changed");
                let _ = tx.send(leading);
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(RENEW_EVERY) => {}
            }
        }
        if *tx.borrow() {
            let _ = tx.send(false);
            release(&api, &me).await;
            tracing::info!(identity = %me, "released the leader Lease");
        }
    });
    (rx, task)
}

/// One look at the Lease: `Ok(true)` when we hold it afterwards.
async fn attempt(api: &Api<Lease>, me: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = match api.get_opt(MIRROR_LEASE).await? {
        Some(l) => l,
        None => {
            let fresh = claimed(
                Lease {
                    metadata: ObjectMeta {
                        name: Some(MIRROR_LEASE.to_owned()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec::default()),
                },
                me,
                now,
                true,
            );
            return match api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        }
    };
    let taking = match decide(&current, me, now) {
        Step::Follow { .. } => return Ok(false),
        Step::Renew => false,
        Step::Take => true,
    };
    match api
        .replace(
            MIRROR_LEASE,
            &PostParams::default(),
            &claimed(current, me, now, taking),
        )
        .await
    {
        Ok(_) => Ok(true),
        // Someone else wrote it since we read it: they won this round.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release(api: &Api<Lease>, me: &str) {
    if let Ok(Some(mut l)) = api.get_opt(MIRROR_LEASE).await
        && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(me)
    {
        if let Some(spec) = l.spec.as_mut() {
            spec.holder_identity = None;
        }
        let _ = api.replace(MIRROR_LEASE, &PostParams::default(), &l).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
                ..Default::default()
            }),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_live_claim_is_followed_an_expired_one_taken_and_our_own_renewed() {
        assert_eq!(
            decide(&lease(Some("b"), 1000), "a", at(1010)),
            Step::Follow { holder: "b".into() }
        );
        assert_eq!(decide(&lease(Some("b"), 1000), "a", at(1016)), Step::Take);
        assert_eq!(decide(&lease(Some("a"), 1000), "a", at(5000)), Step::Renew);
        assert_eq!(decide(&lease(None, 1000), "a", at(1001)), Step::Take);
    }

    #[test]
    fn taking_over_counts_a_transition() {
        let l = claimed(lease(Some("b"), 1000), "a", at(2000), true);
        let s = l.spec.unwrap();
        assert_eq!(s.holder_identity.as_deref(), Some("a"));
        assert_eq!(s.lease_transitions, Some(1));
        assert_eq!(s.renew_time.unwrap().0, at(2000));
    }
}
