//! One Link's view of its target: a kube client built from the link's credentials Secret and a
//! watch of the target's Services matching the Link's selector, feeding a [`RemoteIndex`] and
//! the link's [`RemoteHealth`].
//!
//! ```text
//! Secret mc-link-<target> ─▶ kubeconfig ─▶ Client ─▶ watch Services (selector, all namespaces)
//!     ─▶ health (reachable since, last sync) ─▶ drive ─▶ RemoteIndex ─▶ notify reconciler
//! ```
//!
//! kube-runtime's watcher re-lists after 410 Gone and reconnects with back-off after errors;
//! the driver's re-list replaces the index, so Services deleted during an outage go away.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::metrics::{LinkLabel, Metrics};
use super::observe::RemoteIndex;
use super::status::RemoteHealth;
use crate::k8s::Service;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("Secret {secret} has no key {key}")]
    MissingKey { secret: String, key: &'static str },
    #[error("the kubeconfig in Secret {secret} is not valid: {reason}")]
    Kubeconfig { secret: String, reason: String },
}

/// A client for the target from the kubeconfig a link's Secret holds; `api_server` (the Link's
/// `spec.apiServer`) wins over the kubeconfig's server, so that editing the Link fixes an
/// address without new credentials.
pub async fn client_from_kubeconfig(
    secret: &str,
    yaml: &str,
    api_server: &str,
) -> Result<Client, RemoteError> {
    let bad = |reason: String| RemoteError::Kubeconfig {
        secret: secret.to_owned(),
        reason,
    };
    let mut kc = Kubeconfig::from_yaml(yaml).map_err(|e| bad(e.to_string()))?;
    if !api_server.is_empty() {
        for c in &mut kc.clusters {
            if let Some(cluster) = c.cluster.as_mut() {
                cluster.server = Some(api_server.to_owned());
            }
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    Client::try_from(config).map_err(|e| bad(e.to_string()))
}

/// A running remote watch; dropping it stops the watch.
pub struct Remote {
    pub index: Arc<Mutex<RemoteIndex>>,
    pub health: Arc<Mutex<RemoteHealth>>,
    cancel: CancellationToken,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Remote {
    pub fn spawn(
        link: String,
        client: Client,
        selector: String,
        changed: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Remote {
        let index = Arc::new(Mutex::new(RemoteIndex::default()));
        let health = Arc::new(Mutex::new(RemoteHealth::default()));
        let cancel = CancellationToken::new();
        let label = LinkLabel { link: link.clone() };
        let h = health.clone();
        let notify = changed.clone();
        let m = metrics.clone();
        let l = label.clone();
        let events = watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff()
        .inspect(move |ev| {
            // `Init` announces a list attempt; it proves nothing about the remote.
            if matches!(ev, Ok(watcher::Event::Init)) {
                return;
            }
            let now = super::now_rfc3339();
            let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
            let reachable = ev.is_ok();
            if h.reachable != Some(reachable) {
                h.reachable = Some(reachable);
                h.since = Some(now.clone());
                m.remote_reachable
                    .get_or_create(&l)
                    .set(i64::from(reachable));
                notify.notify_one();
            }
            match ev {
                Ok(_) => {
                    h.last_sync = Some(now);
                    h.error = None;
                }
                Err(e) => h.error = Some(e.to_string()),
            }
        });
        // A resumed watch on a quiet cluster yields no event, so recovery is proven by asking.
        tokio::spawn(recheck(
            Api::<Service>::all(client),
            selector.clone(),
            health.clone(),
            changed.clone(),
            metrics.clone(),
            label,
            cancel.clone(),
        ));
        let h = health.clone();
        let what: &'static str = "remote services";
        tokio::spawn(crate::runtime::watch::drive(
            what,
            events,
            index.clone(),
            cancel.clone(),
            move |_, synced| {
                if synced {
                    h.lock().unwrap_or_else(|p| p.into_inner()).listed = true;
                }
                changed.notify_one();
            },
        ));
        tracing::info!(link = %link, selector = %selector, "watching the target's exported Services");
        Remote {
            index,
            health,
            cancel,
        }
    }
}

/// While the remote is marked unreachable, lists one Service every second; the first answer
/// marks it reachable again.
async fn recheck(
    api: Api<Service>,
    selector: String,
    health: Arc<Mutex<RemoteHealth>>,
    changed: Arc<Notify>,
    metrics: Arc<Metrics>,
    label: LinkLabel,
    cancel: CancellationToken,
) {
    let params = kube::api::ListParams::default().labels(&selector).limit(1);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RECHECK_EVERY) => {}
        }
        let down = health.lock().unwrap_or_else(|p| p.into_inner()).reachable == Some(false);
        if !down || api.list_metadata(&params).await.is_err() {
            continue;
        }
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        if h.reachable == Some(false) {
            h.reachable = Some(true);
            h.since = Some(super::now_rfc3339());
            h.error = None;
            metrics.remote_reachable.get_or_create(&label).set(1);
            tracing::info!(link = %label.link, "the target's API server answers again");
            changed.notify_one();
        }
    }
}

/// How often an unreachable remote is asked again.
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
