//! The controller's I/O loop, thin around the pure parts: watches feed indexes, each pass
//! snapshots them into [`Observed`], [`plan`] decides, the executor writes (only while this
//! replica leads), and each Link's status is written from what was observed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::metrics::{LinkLabel, Metrics};
use super::observe::{GatewaySlice, LocalIndex, MirrorSlice, SplitSlice};
use super::plan::{Action, LinkState, Observed, PlanSettings, plan};
use super::probe::ProbeState;
use super::remote::{Remote, client_from_kubeconfig};
use super::split::{SplitObserved, SplitPlan, SplitState, plan_splits};
use super::status::{RemoteHealth, Transition, differs_beyond_probe_figures, link_status};
use super::{MirrorConfig, MirrorError, now_rfc3339};
use crate::k8s::link::LinkStatus;
use crate::k8s::{
    EndpointSlice, Event, FIELD_MANAGER, GATEWAY_NAME, LABEL_SLICE_MANAGED_BY, LABEL_SLICE_SERVICE,
    LINK_FINALIZER, LINK_SECRET_KEY, Link, Namespace, ObjectMeta, SLICE_MANAGER,
    SPLIT_SLICE_MANAGER, Secret, Service, TrafficSplit,
};
use crate::runtime::backoff::Backoff;
use crate::runtime::watch::drive;

/// How often the credentials Secret is re-read (the controller may only `get` Secrets).
const SECRET_RECHECK: Duration = Duration::from_secs(30);
/// Probe figures (latency, last probe time) are written at most this often.
const STATUS_FIGURES_EVERY: Duration = Duration::from_secs(10);

/// What the controller runs for one Link.
struct LinkRuntime {
    spec: crate::k8s::LinkSpec,
    remote: Option<Remote>,
    secret_version: Option<String>,
    secret_checked: Option<Instant>,
    credentials_error: Option<String>,
    probe: Arc<Mutex<ProbeState>>,
    probe_cancel: CancellationToken,
    status_written: Option<Instant>,
}

impl Drop for LinkRuntime {
    fn drop(&mut self) {
        self.probe_cancel.cancel();
    }
}

fn map_event<K, W>(ev: watcher::Event<K>, f: impl Fn(K) -> W) -> watcher::Event<W> {
    match ev {
        watcher::Event::Apply(k) => watcher::Event::Apply(f(k)),
        watcher::Event::Delete(k) => watcher::Event::Delete(f(k)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(k) => watcher::Event::InitApply(f(k)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// Flags set once each local watch has listed everything.
#[derive(Default)]
struct Synced {
    links: AtomicBool,
    services: AtomicBool,
    slices: AtomicBool,
    gateway: AtomicBool,
    namespaces: AtomicBool,
    splits: AtomicBool,
    split_slices: AtomicBool,
}

impl Synced {
    fn all(&self) -> bool {
        [
            &self.links,
            &self.services,
            &self.slices,
            &self.gateway,
            &self.namespaces,
            &self.splits,
            &self.split_slices,
        ]
        .iter()
        .all(|f| f.load(Ordering::SeqCst))
    }
}

pub(super) struct Controller {
    pub client: Client,
    pub config: MirrorConfig,
    pub settings: PlanSettings,
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
    pub ready: crate::runtime::admin::Gate,
}

impl Controller {
    pub async fn run(self) -> Result<(), MirrorError> {
        let Controller {
            client,
            config,
            settings,
            metrics,
            stop,
            ready,
        } = self;
        let ns = config.namespace.clone();
        let changed = Arc::new(Notify::new());
        let index = Arc::new(Mutex::new(LocalIndex::default()));
        let synced = Arc::new(Synced::default());

        macro_rules! watch_into {
            ($what:expr, $stream:expr, $flag:ident) => {{
                let changed = changed.clone();
                let synced = synced.clone();
                tokio::spawn(drive(
                    $what,
                    $stream,
                    index.clone(),
                    stop.clone(),
                    move |_, done| {
                        if done {
                            synced.$flag.store(true, Ordering::SeqCst);
                        }
                        changed.notify_one();
                    },
                ));
            }};
        }
        let cfg = watcher::Config::default;
        watch_into!(
            "links",
            watcher(Api::<Link>::namespaced(client.clone(), &ns), cfg()).default_backoff(),
            links
        );
        watch_into!(
            "services",
            watcher(Api::<Service>::all(client.clone()), cfg()).default_backoff(),
            services
        );
        watch_into!(
            "mirror endpointslices",
            watcher(
                Api::<EndpointSlice>::all(client.clone()),
                cfg().labels(&format!("{LABEL_SLICE_MANAGED_BY}={SLICE_MANAGER}")),
            )
            .default_backoff()
            .map(|r| r.map(|ev| map_event(ev, MirrorSlice))),
            slices
        );
        watch_into!(
            "gateway endpointslices",
            watcher(
                Api::<EndpointSlice>::namespaced(client.clone(), &ns),
                cfg().labels(&format!("{LABEL_SLICE_SERVICE}={GATEWAY_NAME}")),
            )
            .default_backoff()
            .map(|r| r.map(|ev| map_event(ev, GatewaySlice))),
            gateway
        );
        watch_into!(
            "namespaces",
            watcher(Api::<Namespace>::all(client.clone()), cfg()).default_backoff(),
            namespaces
        );
        watch_into!(
            "trafficsplits",
            watcher(Api::<TrafficSplit>::all(client.clone()), cfg())
                .default_backoff()
                .flat_map(absent_crd_is_empty),
            splits
        );
        watch_into!(
            "split endpointslices",
            watcher(
                Api::<EndpointSlice>::all(client.clone()),
                cfg().labels(&format!("{LABEL_SLICE_MANAGED_BY}={SPLIT_SLICE_MANAGER}")),
            )
            .default_backoff()
            .map(|r| r.map(|ev| map_event(ev, SplitSlice))),
            split_slices
        );

        let (leading, election) =
            super::leader::spawn(client.clone(), &ns, config.identity.clone(), stop.clone());
        let mut exec = Executor {
            client: client.clone(),
            namespace: ns.clone(),
            identity: config.identity.clone(),
            metrics: metrics.clone(),
        };
        let mut links: HashMap<String, LinkRuntime> = HashMap::new();
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut leading_rx = leading.clone();
        loop {
            let resync = tokio::time::sleep(config.resync.min(STATUS_FIGURES_EVERY));
            let retry_sleep = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = changed.notified() => {}
                _ = resync => {}
                _ = retry_sleep => {}
                _ = leading_rx.changed() => {}
            }
            if !synced.all() {
                continue;
            }
            ready.open();
            let is_leader = *leading.borrow();
            metrics.leader.set(i64::from(is_leader));
            let snapshot = {
                let idx = index.lock().unwrap_or_else(|p| p.into_inner());
                Snapshot {
                    links: idx.links.values().cloned().collect(),
                    services: idx.services.clone(),
                    slices: idx.slices.clone(),
                    namespaces: idx.namespaces.clone(),
                    gateway: idx.gateway_endpoints(),
                    splits: idx.splits.values().cloned().collect(),
                    split_slices: idx.split_slices.clone(),
                }
            };
            sync_links(
                &mut links,
                &snapshot.links,
                &client,
                &ns,
                &changed,
                &metrics,
            )
            .await;
            let observed = observe(&snapshot, &links);
            let p = plan(&observed, &settings);
            let (split_observed, split_plan) = plan_splits_of(&snapshot, &observed, &p, &settings);
            metrics.reconciles.inc();
            if !is_leader {
                continue;
            }
            let mut failed = false;
            let mut uids: BTreeMap<(String, String), String> = BTreeMap::new();
            for action in &p.actions {
                if let Err(e) = exec.perform(action, &observed, &mut uids).await {
                    failed = true;
                    tracing::warn!(action = action_kind(action), error = %e, "action failed; will retry");
                }
            }
            failed |= !exec.perform_splits(&split_plan, &split_observed).await;
            for link in &snapshot.links {
                let name = link.name_any();
                let Some(rt) = links.get_mut(&name) else {
                    continue;
                };
                let Some(report) = p.reports.get(&name) else {
                    continue;
                };
                let health = remote_health(rt);
                let probe = rt
                    .probe
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .health
                    .clone();
                let deleting = link.metadata.deletion_timestamp.is_some();
                let now = now_rfc3339();
                let (status, transitions) = link_status(
                    link.status.as_ref(),
                    &name,
                    deleting,
                    report,
                    &health,
                    &probe,
                    &now,
                );
                let label = LinkLabel { link: name.clone() };
                metrics
                    .mirrors
                    .get_or_create(&label)
                    .set(i64::from(report.mirrored));
                metrics
                    .conflicts
                    .get_or_create(&label)
                    .set(report.conflicts.len() as i64);
                let old = link.status.clone().unwrap_or_default();
                let urgent = differs_beyond_probe_figures(&old, &status);
                let figures_due = old != status
                    && rt
                        .status_written
                        .is_none_or(|t| t.elapsed() >= STATUS_FIGURES_EVERY);
                if urgent || figures_due {
                    match exec.write_status(&name, &status).await {
                        Ok(()) => rt.status_written = Some(Instant::now()),
                        Err(e) => {
                            failed = true;
                            tracing::warn!(link = %name, error = %e, "cannot write the Link status");
                        }
                    }
                }
                let mut events = transitions;
                for c in &status.conflicts {
                    if !old.conflicts.contains(c) {
                        events.push(Transition {
                            warning: true,
                            reason: "MirrorConflict".into(),
                            message: format!("{} not mirrored: {}", c.service, c.reason),
                        });
                    }
                }
                for t in events {
                    exec.record_event(link, &t).await;
                }
            }
            if failed {
                let delay = retry.next_delay();
                retry_at = Some(tokio::time::Instant::now() + delay);
            } else {
                retry.reset();
                retry_at = None;
            }
        }
        // A stopping leader hands the Lease over before the process exits (SIGTERM on a
        // rollout), so that the next replica does not wait for it to expire.
        let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
        Ok(())
    }
}

/// A TrafficSplit list answered 404 means its CRD is not installed (an install older than
/// TrafficSplit running a newer controller): that is "no splits", so mirrors keep working. The
/// watcher keeps retrying with back-off, and a CRD installed later is picked up by its next list.
fn absent_crd_is_empty(
    item: Result<watcher::Event<TrafficSplit>, watcher::Error>,
) -> futures::stream::Iter<std::vec::IntoIter<Result<watcher::Event<TrafficSplit>, watcher::Error>>>
{
    let absent = matches!(
        &item,
        Err(watcher::Error::InitialListFailed(kube::Error::Api(s))) if s.code == 404
    );
    let events = if absent {
        tracing::warn!(
            "the TrafficSplit CRD (trafficsplits.mc.dev) is not installed: no traffic splits until it is; apply the output of `mc install` to add it"
        );
        vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)]
    } else {
        vec![item]
    };
    futures::stream::iter(events)
}

struct Snapshot {
    links: Vec<Link>,
    services: BTreeMap<(String, String), super::plan::LocalService>,
    slices: BTreeMap<(String, String), super::plan::LocalSlice>,
    namespaces: std::collections::BTreeSet<String>,
    gateway: Vec<String>,
    splits: Vec<TrafficSplit>,
    split_slices: BTreeMap<(String, String), super::plan::LocalSlice>,
}

/// The TrafficSplit plan of this pass, after the mirror plan (whose ports it allocates around),
/// and the observed state its writes are executed against.
fn plan_splits_of(
    s: &Snapshot,
    observed: &Observed,
    mirror_plan: &super::plan::Plan,
    settings: &PlanSettings,
) -> (Observed, SplitPlan) {
    let input = SplitObserved {
        splits: s
            .splits
            .iter()
            .map(|t| SplitState {
                namespace: t.namespace().unwrap_or_default(),
                name: t.name_any(),
                generation: t.metadata.generation,
                spec: t.spec.clone(),
                status: t.status.clone(),
            })
            .collect(),
        services: s.services.clone(),
        slices: s.split_slices.clone(),
        links: observed
            .links
            .iter()
            .filter(|l| !l.deleting)
            .map(|l| (l.target.clone(), l.gateway_alive))
            .collect(),
        gateway_endpoints: s.gateway.clone(),
        mirror_ports: mirror_plan.ports.clone(),
        port_range: settings.port_range,
    };
    let against = Observed {
        services: s.services.clone(),
        slices: s.split_slices.clone(),
        ..Default::default()
    };
    (against, plan_splits(&input))
}

fn action_kind(a: &Action) -> &'static str {
    match a {
        Action::AddFinalizer { .. } => "add_finalizer",
        Action::CreateNamespace { .. } => "create_namespace",
        Action::ApplyService { .. } => "apply_service",
        Action::ApplySlice { .. } => "apply_slice",
        Action::DeleteService { .. } => "delete_service",
        Action::DeleteSlice { .. } => "delete_slice",
        Action::RemoveFinalizer { .. } => "remove_finalizer",
    }
}

fn remote_health(rt: &LinkRuntime) -> RemoteHealth {
    let mut h = rt
        .remote
        .as_ref()
        .map(|r| r.health.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .unwrap_or_default();
    h.credentials_error = rt.credentials_error.clone();
    h
}

fn observe(s: &Snapshot, links: &HashMap<String, LinkRuntime>) -> Observed {
    let states = s
        .links
        .iter()
        .map(|l| {
            let name = l.name_any();
            let rt = links.get(&name);
            let remote = rt.and_then(|rt| rt.remote.as_ref()).and_then(|r| {
                let listed = r.health.lock().unwrap_or_else(|p| p.into_inner()).listed;
                listed.then(|| {
                    r.index
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .services
                        .values()
                        .cloned()
                        .collect()
                })
            });
            // Unknown (not probed yet) counts as alive: endpoints go not-ready only after the
            // probe's failure threshold, never on a controller restart.
            let gateway_alive = rt.is_none_or(|rt| {
                rt.probe
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .health
                    .alive
                    != Some(false)
            });
            LinkState {
                target: name,
                deleting: l.metadata.deletion_timestamp.is_some(),
                has_finalizer: l.finalizers().iter().any(|f| f == LINK_FINALIZER),
                remote,
                gateway_alive,
            }
        })
        .collect();
    Observed {
        links: states,
        links_synced: true,
        services: s.services.clone(),
        slices: s.slices.clone(),
        namespaces: Some(s.namespaces.clone()),
        gateway_endpoints: s.gateway.clone(),
        reserved_ports: s
            .splits
            .iter()
            .filter_map(|t| t.status.as_ref())
            .flat_map(|st| st.ports.iter().map(|p| p.gateway_port))
            .collect(),
    }
}

/// Starts, restarts and stops the per-link remote watches and probes to match the Links.
async fn sync_links(
    links: &mut HashMap<String, LinkRuntime>,
    current: &[Link],
    client: &Client,
    ns: &str,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
) {
    let names: std::collections::BTreeSet<String> = current.iter().map(|l| l.name_any()).collect();
    links.retain(|name, _| {
        let keep = names.contains(name);
        if !keep {
            tracing::info!(link = %name, "Link gone: stopping its watch and probe");
            metrics.forget_link(name);
        }
        keep
    });
    for link in current {
        let name = link.name_any();
        let spec = &link.spec;
        let restart_probe = links.get(&name).is_none_or(|rt| {
            rt.spec.gateway_addresses != spec.gateway_addresses || rt.spec.probe != spec.probe
        });
        if restart_probe {
            let probe = Arc::new(Mutex::new(ProbeState::default()));
            let cancel = CancellationToken::new();
            tokio::spawn(super::probe::run(
                name.clone(),
                spec.gateway_addresses.clone(),
                spec.probe.clone(),
                probe.clone(),
                changed.clone(),
                metrics.clone(),
                cancel.clone(),
            ));
            match links.get_mut(&name) {
                Some(rt) => {
                    rt.probe_cancel.cancel();
                    rt.probe = probe;
                    rt.probe_cancel = cancel;
                }
                None => {
                    links.insert(
                        name.clone(),
                        LinkRuntime {
                            spec: spec.clone(),
                            remote: None,
                            secret_version: None,
                            secret_checked: None,
                            credentials_error: None,
                            probe,
                            probe_cancel: cancel,
                            status_written: None,
                        },
                    );
                }
            }
        }
        let Some(rt) = links.get_mut(&name) else {
            continue;
        };
        let spec_changed = rt.spec.api_server != spec.api_server
            || rt.spec.selector != spec.selector
            || rt.spec.credentials_secret != spec.credentials_secret;
        rt.spec = spec.clone();
        if link.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let due = rt.remote.is_none()
            || spec_changed
            || rt
                .secret_checked
                .is_none_or(|t| t.elapsed() >= SECRET_RECHECK);
        if !due {
            continue;
        }
        rt.secret_checked = Some(Instant::now());
        let secret_name = spec.credentials_secret.clone();
        let shown = format!("{ns}/{secret_name}");
        let secret = match Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&secret_name)
            .await
        {
            Ok(Some(s)) => s,
            Ok(None) => {
                rt.credentials_error = Some(format!("Secret {shown} does not exist"));
                continue;
            }
            Err(e) => {
                rt.credentials_error = Some(format!("cannot read Secret {shown}: {e}"));
                continue;
            }
        };
        let version = secret.resource_version();
        if !spec_changed && rt.remote.is_some() && version == rt.secret_version {
            rt.credentials_error = None;
            continue;
        }
        let yaml = secret
            .data
            .as_ref()
            .and_then(|d| d.get(LINK_SECRET_KEY))
            .and_then(|b| String::from_utf8(b.0.clone()).ok());
        let Some(yaml) = yaml else {
            rt.credentials_error = Some(format!("Secret {shown} has no key {LINK_SECRET_KEY}"));
            continue;
        };
        match client_from_kubeconfig(&shown, &yaml, &spec.api_server).await {
            Ok(remote_client) => {
                tracing::info!(link = %name, secret = %shown, "credentials loaded; (re)starting the remote watch");
                // The old watch stops when its handle is dropped; mirrors stay meanwhile
                // because the new watch is not `listed` until its first complete list.
                rt.remote = Some(Remote::spawn(
                    name.clone(),
                    remote_client,
                    spec.selector.clone(),
                    changed.clone(),
                    metrics.clone(),
                ));
                rt.secret_version = version;
                rt.credentials_error = None;
            }
            Err(e) => rt.credentials_error = Some(e.to_string()),
        }
    }
}

struct Executor {
    client: Client,
    namespace: String,
    identity: String,
    metrics: Arc<Metrics>,
}

fn ok_if_not_found(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    }
}

impl Executor {
    async fn perform(
        &mut self,
        action: &Action,
        observed: &Observed,
        uids: &mut BTreeMap<(String, String), String>,
    ) -> Result<(), kube::Error> {
        let r = self.perform_inner(action, observed, uids).await;
        self.metrics.action(action_kind(action), r.is_ok());
        r
    }

    async fn perform_inner(
        &mut self,
        action: &Action,
        observed: &Observed,
        uids: &mut BTreeMap<(String, String), String>,
    ) -> Result<(), kube::Error> {
        let ssa = PatchParams::apply(FIELD_MANAGER).force();
        let create_by_apply = PatchParams::apply(FIELD_MANAGER);
        let post = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..Default::default()
        };
        match action {
            Action::AddFinalizer { link } | Action::RemoveFinalizer { link } => {
                let api: Api<Link> = Api::namespaced(self.client.clone(), &self.namespace);
                let Some(current) = api.get_opt(link).await? else {
                    return Ok(());
                };
                let mut finalizers: Vec<String> = current.finalizers().to_vec();
                finalizers.retain(|f| f != LINK_FINALIZER);
                if matches!(action, Action::AddFinalizer { .. }) {
                    finalizers.push(LINK_FINALIZER.to_owned());
                }
                let patch = json!({"metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": current.resource_version(),
                }});
                api.patch(link, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                tracing::info!(link = %link, action = action_kind(action), "Link finalizer updated");
            }
            Action::CreateNamespace { name } => {
                let api: Api<Namespace> = Api::all(self.client.clone());
                let nsobj = Namespace {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match api.create(&post, &nsobj).await {
                    Ok(_) => tracing::info!(namespace = %name, "namespace created for mirrors"),
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
            Action::ApplyService {
                namespace,
                name,
                service,
            } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                let key = (namespace.clone(), name.clone());
                // Created by server-side apply too, never by POST: the fields must belong to
                // one (manager, operation) from the start, or a later apply cannot remove a port
                // that west dropped (it stays owned by the POST's "Update" entry) and a port
                // renumbered under the same name clashes with it. The create is not forced: if
                // someone created a Service of that name since we looked, fields they set
                // differently conflict (409) and the next pass reports the Service as theirs.
                let params = if observed.services.contains_key(&key) {
                    &ssa
                } else {
                    &create_by_apply
                };
                let written = api.patch(name, params, &Patch::Apply(&**service)).await?;
                if let Some(uid) = written.uid() {
                    uids.insert(key, uid);
                }
                tracing::info!(service = %format!("{namespace}/{name}"), "mirror Service written");
            }
            Action::ApplySlice {
                namespace,
                name,
                slice,
            } => {
                let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), namespace);
                let key = (namespace.clone(), name.clone());
                let mut slice = (**slice).clone();
                slice.metadata.namespace = Some(namespace.clone());
                if slice.metadata.owner_references.is_none()
                    && let Some(uid) = uids
                        .get(&key)
                        .cloned()
                        .or_else(|| observed.services.get(&key).and_then(|s| s.uid.clone()))
                {
                    slice.metadata.owner_references = Some(vec![
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                            api_version: "v1".into(),
                            kind: "Service".into(),
                            name: name.clone(),
                            uid,
                            controller: Some(true),
                            block_owner_deletion: Some(false),
                        },
                    ]);
                }
                if observed.slices.contains_key(&key) {
                    api.patch(name, &ssa, &Patch::Apply(&slice)).await?;
                } else {
                    match api.create(&post, &slice).await {
                        // Left over from a run that did not see it yet (or a GC race): take it
                        // over only if it carries our manager label, which the plan's watch
                        // selects on; otherwise the next pass sees it and decides.
                        Err(kube::Error::Api(s)) if s.code == 409 => {
                            api.patch(name, &ssa, &Patch::Apply(&slice)).await?;
                        }
                        other => {
                            other?;
                        }
                    }
                }
            }
            Action::DeleteService { namespace, name } => {
                let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
                // Only the object we saw: a Service re-created by someone else meanwhile is
                // not ours to delete.
                let uid = observed
                    .services
                    .get(&(namespace.clone(), name.clone()))
                    .and_then(|s| s.uid.clone());
                let dp = DeleteParams {
                    preconditions: uid.map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                ok_if_not_found(api.delete(name, &dp).await.map(|_| ()))?;
                tracing::info!(service = %format!("{namespace}/{name}"), "mirror Service deleted");
            }
            Action::DeleteSlice { namespace, name } => {
                let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), namespace);
                ok_if_not_found(api.delete(name, &DeleteParams::default()).await.map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// Performs a split plan: its Service and slice writes, then its status writes. Returns
    /// whether everything succeeded (failures are logged and retried by the next pass).
    async fn perform_splits(&mut self, p: &SplitPlan, observed: &Observed) -> bool {
        let mut ok = true;
        let mut uids = BTreeMap::new();
        for action in &p.actions {
            if let Err(e) = self.perform(action, observed, &mut uids).await {
                ok = false;
                tracing::warn!(action = action_kind(action), error = %e, "TrafficSplit action failed; will retry");
            }
        }
        for ((namespace, name), status) in &p.statuses {
            let api: Api<TrafficSplit> = Api::namespaced(self.client.clone(), namespace);
            let mut value = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
            // A merge patch keeps keys it does not mention: absent means "clear it" here.
            if let Some(obj) = value.as_object_mut() {
                for key in [
                    "ports",
                    "backends",
                    "weights",
                    "conflict",
                    "observedGeneration",
                ] {
                    obj.entry(key).or_insert(serde_json::Value::Null);
                }
            }
            let patch = Patch::Merge(json!({"status": value}));
            match api
                .patch_status(name, &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => {
                    tracing::info!(split = %format!("{namespace}/{name}"), weights = ?status.weights, conflict = ?status.conflict, "TrafficSplit status written");
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    ok = false;
                    tracing::warn!(split = %format!("{namespace}/{name}"), error = %e, "cannot write the TrafficSplit status");
                }
            }
        }
        ok
    }

    async fn write_status(&self, link: &str, status: &LinkStatus) -> Result<(), kube::Error> {
        let api: Api<Link> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut value = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
        // A merge patch keeps keys it does not mention: absent means "clear it" here.
        if let Some(obj) = value.as_object_mut() {
            for key in ["gateway", "lastSyncTime", "mirroredServices"] {
                obj.entry(key).or_insert(serde_json::Value::Null);
            }
            obj.entry("conflicts").or_insert(json!([]));
        }
        match api
            .patch_status(
                link,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": value})),
            )
            .await
        {
            Ok(_) => Ok(()),
            // The Link went away between the snapshot and the write.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A core/v1 Event on the Link (what `kubectl describe link` and `kubectl get events` read).
    async fn record_event(&self, link: &Link, t: &Transition) {
        let now = Time(Timestamp::now());
        let name = link.name_any();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{}", uuid::Uuid::new_v4().simple())),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("mc.dev/v1alpha1".into()),
                kind: Some("Link".into()),
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                uid: link.uid(),
                resource_version: link.resource_version(),
                ..Default::default()
            },
            reason: Some(t.reason.clone()),
            message: Some(t.message.clone()),
            type_: Some(if t.warning { "Warning" } else { "Normal" }.into()),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(crate::k8s::MIRROR_NAME.into()),
                host: None,
            }),
            reporting_component: Some(crate::k8s::MIRROR_NAME.into()),
            reporting_instance: Some(self.identity.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(link = %name, error = %e, "cannot record an Event");
        }
        if t.warning {
            tracing::warn!(link = %name, reason = %t.reason, "{}", t.message);
        } else {
            tracing::info!(link = %name, reason = %t.reason, "{}", t.message);
        }
    }
}
