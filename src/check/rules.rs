//! The checks, pure: gathered facts and the time → one [`Check`] per line of `mc check`.
//!
//! A check that cannot apply (its input was not gathered, or an earlier check already failed on
//! the same cause) is left out rather than reported twice: one broken thing, one red line.

use std::collections::{BTreeMap, BTreeSet};

use kube::{CustomResourceExt as _, ResourceExt as _};

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::facts::{ClusterFacts, DeploymentFact, LinkFacts, MirrorFact, RemoteView};
use super::{Category, Check, DOCS, Outcome};
use crate::identity::store::rfc3339;
use crate::identity::verify::{Validity, validity_at};
use crate::k8s::link::{Condition, condition};
use crate::k8s::{McConfig, TrafficSplit, link_secret_name, remote_access_account};
use crate::mirror::observe::DAISY_CHAIN;
use crate::mirror::status::reason;

/// Oldest Kubernetes minor version mc is tested against (1.28: sidecar-era APIs, EndpointSlice v1,
/// TokenRequest with bound tokens).
pub const MIN_MINOR: u32 = 28;
/// Certificates and tokens closer than this to their end are warnings.
pub const WARN_DAYS: i64 = 30;
/// A Link status whose last probe is older than this is not being kept up to date (the
/// controller writes probe figures at least every 10 s).
pub const STALE_AFTER: time::Duration = time::Duration::seconds(60);

/// Every check id; each is a heading (an anchor) in docs/troubleshooting.md (a test holds both
/// to it).
pub const IDS: &[&str] = &[
    "k8s-api",
    "k8s-version",
    "crd",
    "rbac-objects",
    "rbac-access",
    "namespace",
    "config",
    "gateway-deployment",
    "mirror-deployment",
    "gateway-address",
    "anchors-validity",
    "issuer-chain",
    "issuer-validity",
    "gateway-certificate",
    "links",
    "link-credentials",
    "link-token",
    "link-remote",
    "link-status-fresh",
    "link-anchors",
    "link-remote-access",
    "link-mirrored",
    "link-orphans",
    "link-gateway",
    "link-conflicts",
    "link-daisy-chain",
    "mirrors-without-link",
    "outbound-ports",
    "exported-mirrors",
    "traffic-splits",
    "traffic-split",
];

/// Every check of every cluster, in print order.
pub fn evaluate(clusters: &[ClusterFacts], now: OffsetDateTime) -> Vec<Check> {
    clusters.iter().flat_map(|c| cluster(c, now)).collect()
}

/// Collects checks for one context and category.
struct Lines<'a> {
    context: &'a str,
    category: Category,
    link: Option<String>,
    out: Vec<Check>,
}

impl Lines<'_> {
    fn push(
        &mut self,
        id: &'static str,
        name: String,
        result: Outcome,
        message: String,
        fix: &str,
    ) {
        let hint = (result != Outcome::Ok).then(|| format!("{fix}; see {DOCS}#{id}"));
        let name = match &self.link {
            Some(l) => format!("{l}: {name}"),
            None => name,
        };
        self.out.push(Check {
            context: self.context.to_owned(),
            category: self.category,
            id,
            name,
            link: self.link.clone(),
            result,
            message,
            hint,
        });
    }
    fn ok(&mut self, id: &'static str, name: impl Into<String>, message: impl Into<String>) {
        self.push(id, name.into(), Outcome::Ok, message.into(), "");
    }
    fn warn(
        &mut self,
        id: &'static str,
        name: impl Into<String>,
        message: impl Into<String>,
        fix: &str,
    ) {
        self.push(id, name.into(), Outcome::Warning, message.into(), fix);
    }
    fn fail(
        &mut self,
        id: &'static str,
        name: impl Into<String>,
        message: impl Into<String>,
        fix: &str,
    ) {
        self.push(id, name.into(), Outcome::Error, message.into(), fix);
    }
}

/// The checks of one cluster, all categories.
pub fn cluster(f: &ClusterFacts, now: OffsetDateTime) -> Vec<Check> {
    let mut l = Lines {
        context: &f.context,
        category: Category::Kubernetes,
        link: None,
        out: Vec::new(),
    };
    if !kubernetes(&mut l, f) {
        return l.out;
    }
    l.category = Category::Install;
    let Some(config) = install(&mut l, f) else {
        return l.out;
    };
    l.category = Category::Identity;
    identity(&mut l, f, &config, now);
    l.category = Category::Links;
    links(&mut l, f, &config, now);
    l.category = Category::Splits;
    splits(&mut l, f);
    l.out
}

/// One line per TrafficSplit (nothing when there is none): is it routed, and does every backend
/// with a weight take its share. A split whose CRD is missing was already reported by `crd`.
fn splits(l: &mut Lines<'_>, f: &ClusterFacts) {
    let crd_ok = f
        .crds
        .iter()
        .any(|(n, e)| n == TrafficSplit::crd_name() && *e == Ok(Some(true)));
    let splits = match &f.splits {
        Ok(splits) => splits,
        Err(_) if !crd_ok => return,
        Err(e) => {
            l.fail(
                "traffic-splits",
                "TrafficSplits can be listed",
                format!("cannot list TrafficSplits: {e}"),
                "check your access",
            );
            return;
        }
    };
    let waiting = "check that the mc-mirror Deployment is available";
    for split in splits {
        let ns = split.namespace().unwrap_or_default();
        let name = format!("TrafficSplit {ns}/{} is routed", split.name_any());
        let describe = format!(
            "`kubectl describe trafficsplit -n {ns} {}` shows it",
            split.name_any()
        );
        let Some(status) = &split.status else {
            l.warn(
                "traffic-split",
                name,
                "the mirror controller has not routed it yet",
                waiting,
            );
            continue;
        };
        if let Some(conflict) = &status.conflict {
            l.fail(
                "traffic-split",
                name,
                format!("not routed: {conflict}"),
                &describe,
            );
            continue;
        }
        let generation = split.metadata.generation;
        if generation.is_some() && status.observed_generation != generation {
            l.warn(
                "traffic-split",
                name,
                format!(
                    "the mirror controller has not routed generation {} yet (status is of generation {})",
                    generation.unwrap_or_default(),
                    status
                        .observed_generation
                        .map_or_else(|| "none".to_owned(), |g| g.to_string())
                ),
                waiting,
            );
            continue;
        }
        let out: Vec<String> = status
            .backends
            .iter()
            .filter(|b| b.weight > 0 && b.effective_weight == 0)
            .map(|b| format!("{}: {}", b.service, b.reason.as_deref().unwrap_or("out")))
            .collect();
        let weights = status.weights.clone().unwrap_or_default();
        let fix = format!(
            "create the missing backend Services, or bring back the gateways of the clusters named (their link-gateway check); {describe}"
        );
        if status.backends.iter().all(|b| b.effective_weight == 0) {
            l.fail(
                "traffic-split",
                name,
                format!(
                    "no backend takes connections, so they are refused{}",
                    if out.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", out.join("; "))
                    }
                ),
                &fix,
            );
        } else if !out.is_empty() {
            l.warn(
                "traffic-split",
                name,
                format!("routing {weights}; out of the split: {}", out.join("; ")),
                &fix,
            );
        } else {
            l.ok("traffic-split", name, format!("routing {weights}"));
        }
    }
}

/// False when the API is not reachable (nothing else can be checked).
fn kubernetes(l: &mut Lines<'_>, f: &ClusterFacts) -> bool {
    let (minor, git) = match &f.version {
        Ok((_, minor, git)) => (*minor, git.clone()),
        Err(e) => {
            l.fail(
                "k8s-api",
                "Kubernetes API is reachable",
                format!("cannot reach the API server of context {}: {e}", f.context),
                "check the kubeconfig context and that the API server is up",
            );
            return false;
        }
    };
    l.ok(
        "k8s-api",
        "Kubernetes API is reachable",
        format!("server {git}"),
    );
    if minor >= MIN_MINOR {
        l.ok("k8s-version", "Kubernetes version is supported", git);
    } else {
        l.fail(
            "k8s-version",
            "Kubernetes version is supported",
            format!("{git} is older than 1.{MIN_MINOR}"),
            "upgrade the cluster",
        );
    }
    for (crd, established) in &f.crds {
        let name = format!("CRD {crd} is established");
        match established {
            Ok(Some(true)) => l.ok("crd", name, "established"),
            Ok(Some(false)) => l.fail(
                "crd",
                name,
                "the CustomResourceDefinition exists but is not Established",
                &format!("see `kubectl describe crd {crd}`"),
            ),
            Ok(None) => l.fail(
                "crd",
                name,
                format!("CustomResourceDefinition {crd} not found"),
                "apply the output of `mc install`",
            ),
            Err(e) => l.fail(
                "crd",
                name,
                format!("cannot read it: {e}"),
                "check your access",
            ),
        }
    }
    let objects = "RBAC objects of mc are present";
    match &f.rbac_objects {
        Ok(objs) => {
            let missing: Vec<String> = objs
                .iter()
                .filter(|(_, _, present)| !present)
                .map(|(kind, name, _)| format!("{kind} {name}"))
                .collect();
            if missing.is_empty() {
                l.ok("rbac-objects", objects, format!("{} objects", objs.len()));
            } else {
                l.fail(
                    "rbac-objects",
                    objects,
                    format!("missing: {}", missing.join(", ")),
                    "apply the output of `mc install` again",
                );
            }
        }
        Err(e) => l.fail(
            "rbac-objects",
            objects,
            format!("cannot read them: {e}"),
            "check your access",
        ),
    }
    let access = "mc's ServiceAccounts have the access they need";
    match &f.access {
        Ok(facts) => {
            let denied: Vec<String> = facts
                .iter()
                .filter(|a| !a.allowed)
                .map(|a| {
                    let resource = match a.group.as_str() {
                        "" => a.resource.clone(),
                        g => format!("{}.{g}", a.resource),
                    };
                    let scope = a
                        .namespace
                        .as_deref()
                        .map(|n| format!(" in {n}"))
                        .unwrap_or_default();
                    format!("{} cannot {} {resource}{scope}", a.account, a.verb)
                })
                .collect();
            let how = match &f.access_by_rules {
                None => "asked as each ServiceAccount".to_owned(),
                Some(refused) => {
                    format!("judged from the roles and bindings: cannot impersonate ({refused})")
                }
            };
            if denied.is_empty() {
                l.ok(
                    "rbac-access",
                    access,
                    format!("{} permissions granted ({how})", facts.len()),
                );
            } else {
                l.fail(
                    "rbac-access",
                    access,
                    format!("{} ({how})", denied.join("; ")),
                    "apply the output of `mc install` again (it renders the roles)",
                );
            }
        }
        Err(e) => l.warn(
            "rbac-access",
            access,
            format!("not verified: {e}"),
            "run mc check as a user allowed to impersonate, or compare the roles with `mc install`",
        ),
    }
    true
}

/// The parsed `mc-config`, when the installation is there far enough to check the rest.
fn install(l: &mut Lines<'_>, f: &ClusterFacts) -> Option<McConfig> {
    let ns = &f.namespace;
    let name = format!("namespace {ns} exists");
    match &f.namespace_exists {
        Ok(true) => l.ok("namespace", name, "found"),
        Ok(false) => {
            l.fail(
                "namespace",
                name,
                format!(
                    "namespace {ns} not found: mc is not installed in context {}",
                    f.context
                ),
                "install mc: `mc install ... | kubectl apply -f -`",
            );
            return None;
        }
        Err(e) => {
            l.fail(
                "namespace",
                name,
                format!("cannot read it: {e}"),
                "check your access",
            );
            return None;
        }
    }
    let name = "mc-config is valid";
    let config = match &f.config {
        Ok(Some(Ok(c))) => {
            l.ok(
                "config",
                name,
                format!(
                    "cluster {}, trust domain {}",
                    c.cluster_name, c.trust_domain
                ),
            );
            Some(c.clone())
        }
        Ok(Some(Err(e))) => {
            l.fail(
                "config",
                name,
                e.clone(),
                "apply the output of `mc install` again",
            );
            None
        }
        Ok(None) => {
            l.fail(
                "config",
                name,
                format!("ConfigMap {ns}/mc-config not found"),
                "apply the output of `mc install` again",
            );
            None
        }
        Err(e) => {
            l.fail(
                "config",
                name,
                format!("cannot read it: {e}"),
                "check your access",
            );
            None
        }
    };
    for d in &f.deployments {
        deployment(l, ns, d);
    }
    let name = "mc-gateway Service has an address";
    match &f.gateway_service {
        Ok(Some(s)) if s.addresses.is_empty() => l.fail(
            "gateway-address",
            name,
            format!("Service {ns}/mc-gateway (type {}) has no address yet", s.type_),
            "check that the cluster can provision load balancers, or install with --set gateway.serviceType=NodePort",
        ),
        Ok(Some(s)) if s.type_ == "ClusterIP" => l.warn(
            "gateway-address",
            name,
            format!("type ClusterIP ({}): other clusters cannot reach it", s.addresses.join(", ")),
            "use a LoadBalancer or NodePort Service, or pass --gateway-address to `mc link`",
        ),
        Ok(Some(s)) => l.ok("gateway-address", name, format!("{} {}", s.type_, s.addresses.join(", "))),
        Ok(None) => l.fail(
            "gateway-address",
            name,
            format!("Service {ns}/mc-gateway not found"),
            "apply the output of `mc install` again",
        ),
        Err(e) => l.fail("gateway-address", name, format!("cannot read it: {e}"), "check your access"),
    }
    config
}

fn deployment(l: &mut Lines<'_>, ns: &str, d: &DeploymentFact) {
    let id = match d.name.as_str() {
        crate::k8s::GATEWAY_NAME => "gateway-deployment",
        _ => "mirror-deployment",
    };
    let name = format!("{} Deployment is available", d.name);
    let fix = format!(
        "see `kubectl -n {ns} describe deployment {}` and its Pods' logs",
        d.name
    );
    match &d.state {
        Ok(Some(s)) if s.desired == 0 => l.fail(
            id,
            name,
            "scaled to 0 replicas",
            &format!(
                "scale it up: `kubectl -n {ns} scale deployment {} --replicas 1`",
                d.name
            ),
        ),
        Ok(Some(s)) if s.available == 0 => l.fail(
            id,
            name,
            format!(
                "0/{} replicas available{}",
                s.desired,
                s.condition
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ),
            &fix,
        ),
        Ok(Some(s)) if s.available < s.desired => l.warn(
            id,
            name,
            format!("{}/{} replicas available", s.available, s.desired),
            &fix,
        ),
        Ok(Some(s)) => l.ok(
            id,
            name,
            format!("{}/{} replicas available", s.available, s.desired),
        ),
        Ok(None) => l.fail(
            id,
            name,
            format!("Deployment {ns}/{} not found", d.name),
            "apply the output of `mc install` again",
        ),
        Err(e) => l.fail(
            id,
            name,
            format!("cannot read it: {e}"),
            "check your access",
        ),
    }
}

fn ders(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    crate::identity::pki::parse_cert_pems(pem.as_bytes()).map_err(|e| e.to_string())
}

fn common_name(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .ok()
        .and_then(|(_, c)| {
            c.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok().map(str::to_owned))
        })
        .unwrap_or_else(|| "(no CN)".into())
}

/// Validity of one certificate as a check outcome and message.
fn validity(der: &[u8], now: OffsetDateTime) -> (Outcome, String) {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return (Outcome::Error, "cannot be parsed".into());
    };
    let date = |t: OffsetDateTime| t.date().to_string();
    match validity_at(&cert, now) {
        Validity::NotYetValid { not_before } => (
            Outcome::Error,
            format!(
                "not valid before {} (check the clocks)",
                rfc3339(not_before)
            ),
        ),
        Validity::Expired { not_after } => {
            (Outcome::Error, format!("expired at {}", rfc3339(not_after)))
        }
        Validity::Valid { not_after } => {
            let days = (not_after - now).whole_days();
            let result = if days < WARN_DAYS {
                Outcome::Warning
            } else {
                Outcome::Ok
            };
            let left = if days >= 2 {
                format!("{days} days")
            } else {
                age(not_after - now)
            };
            (result, format!("{left} left, until {}", date(not_after)))
        }
    }
}

fn identity(l: &mut Lines<'_>, f: &ClusterFacts, config: &McConfig, now: OffsetDateTime) {
    let ns = &f.namespace;
    let anchors = match ders(&config.ca_bundle) {
        Ok(a) => a,
        Err(e) => {
            l.fail(
                "anchors-validity",
                "trust anchors in mc-config are valid",
                format!("ca-bundle.crt of {ns}/mc-config cannot be read: {e}"),
                "re-install with the anchor from `mc identity init`",
            );
            return;
        }
    };
    let mut worst = Outcome::Ok;
    let mut parts = Vec::new();
    for a in &anchors {
        let (result, msg) = validity(a, now);
        worst = worst.max(result);
        parts.push(format!("{}: {msg}", common_name(a)));
    }
    let name = "trust anchors in mc-config are valid";
    let msg = parts.join("; ");
    let fix = "rotate the anchor: see docs/trust.md";
    match worst {
        Outcome::Ok => l.ok("anchors-validity", name, msg),
        Outcome::Warning => l.warn("anchors-validity", name, msg, fix),
        Outcome::Error => l.fail("anchors-validity", name, msg, fix),
    }

    let issuer = match &f.issuer_pem {
        Ok(Some(pem)) => match ders(pem) {
            Ok(d) => Some(d),
            Err(e) => {
                l.fail(
                    "issuer-chain",
                    "mc-issuer chains to an anchor in mc-config",
                    format!("tls.crt of Secret {ns}/mc-issuer cannot be read: {e}"),
                    "issue a new issuer with `mc identity issue` and re-install",
                );
                None
            }
        },
        Ok(None) => {
            l.fail(
                "issuer-chain",
                "mc-issuer chains to an anchor in mc-config",
                format!("Secret {ns}/mc-issuer (key tls.crt) not found"),
                "apply the output of `mc install` again",
            );
            None
        }
        Err(e) => {
            l.fail(
                "issuer-chain",
                "mc-issuer chains to an anchor in mc-config",
                format!("cannot read Secret {ns}/mc-issuer: {e}"),
                "check your access",
            );
            None
        }
    };
    if let Some(issuer) = &issuer {
        let name = "mc-issuer chains to an anchor in mc-config";
        match crate::identity::verify_ca_signed_by(&issuer[0], &anchors) {
            Ok(i) => l.ok("issuer-chain", name, format!("signed by {}", common_name(&anchors[i]))),
            Err(e) => l.fail(
                "issuer-chain",
                name,
                format!("{} is not signed by any anchor of mc-config: {e}", common_name(&issuer[0])),
                "issue the issuer from the anchor in mc-config (`mc identity issue`) and re-install",
            ),
        }
        let name = "mc-issuer is valid";
        let (result, msg) = validity(&issuer[0], now);
        let fix = "issue a new issuer with `mc identity issue` and re-install";
        match result {
            Outcome::Ok => l.ok("issuer-validity", name, msg),
            Outcome::Warning => l.warn("issuer-validity", name, msg, fix),
            Outcome::Error => l.fail("issuer-validity", name, msg, fix),
        }
    }

    let expected = config.gateway_identity.clone().unwrap_or_else(|| {
        crate::identity::gateway_dns_name_in(ns, &config.cluster_name, &config.trust_domain)
    });
    let name = "the gateway serves a certificate for its identity";
    match &f.gateway_chain {
        None => {}
        Some(Err(e)) => l.warn(
            "gateway-certificate",
            name,
            format!("could not fetch it: {e}"),
            "check that mc-gateway runs and that its address is reachable from here",
        ),
        Some(Ok(chain)) if chain.is_empty() => l.fail(
            "gateway-certificate",
            name,
            "the gateway presented no certificate",
            "see the mc-gateway Pods' logs",
        ),
        Some(Ok(chain)) => {
            let leaf = CertificateDer::from(chain[0].clone());
            let mut intermediates: Vec<CertificateDer<'static>> = chain[1..]
                .iter()
                .map(|d| CertificateDer::from(d.clone()))
                .collect();
            intermediates.extend(issuer.iter().flatten().cloned());
            let sans = X509Certificate::from_der(&chain[0])
                .map(|(_, c)| crate::identity::pki::dns_sans(&c))
                .unwrap_or_default();
            if !sans.contains(&expected) {
                l.fail(
                    "gateway-certificate",
                    name,
                    format!("it names {} instead of {expected}", sans.join(", ")),
                    "restart mc-gateway after fixing mc-config (gatewayIdentity)",
                );
            } else {
                match crate::identity::verify_chain(&leaf, &intermediates, &anchors, now.into()) {
                    Ok(()) => {
                        let (_, left) = validity(&chain[0], now);
                        l.ok(
                            "gateway-certificate",
                            name,
                            format!("{expected}, chains to the anchor, {left}"),
                        );
                    }
                    Err(e) => l.fail(
                        "gateway-certificate",
                        name,
                        format!(
                            "{expected} does not verify against the anchors of mc-config: {e}{}",
                            std::error::Error::source(&e)
                                .map(|s| format!(" ({s:?})"))
                                .unwrap_or_default()
                        ),
                        "restart mc-gateway so that it mints a leaf from the current mc-issuer",
                    ),
                }
            }
        }
    }
}

fn cond<'a>(link: &'a crate::k8s::Link, type_: &str) -> Option<&'a Condition> {
    link.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn parse_time(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// `5s`, `3m`, `2h`, `4d`.
pub fn age(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// `; last Warning event 2m ago: <reason>: <message>` from the Link's Events (empty if none):
/// what the controller said last, and since when.
fn last_warning(lf: &LinkFacts, now: OffsetDateTime) -> String {
    lf.events
        .iter()
        .find(|e| e.warning)
        .map(|e| {
            let when = e
                .time
                .as_deref()
                .and_then(parse_time)
                .map(|t| format!(" {} ago", age(now - t)))
                .unwrap_or_default();
            format!("; last Warning event{when}: {}: {}", e.reason, e.message)
        })
        .unwrap_or_default()
}

fn links(l: &mut Lines<'_>, f: &ClusterFacts, config: &McConfig, now: OffsetDateTime) {
    let links = match &f.links {
        Ok(links) => links,
        Err(e) => {
            l.fail(
                "links",
                "Links can be listed",
                format!("cannot list Links: {e}"),
                "check your access",
            );
            return;
        }
    };
    let names: Vec<String> = links.iter().map(|lf| lf.link.name_any()).collect();
    l.ok(
        "links",
        "Links can be listed",
        match names.len() {
            0 => "no Links: this cluster mirrors nothing (yet)".to_owned(),
            n => format!("{n}: {}", names.join(", ")),
        },
    );
    let mirrors = f.mirrors.as_deref().unwrap_or_default();
    for lf in links {
        l.link = Some(lf.link.metadata.name.clone().unwrap_or_default());
        link(l, f, config, lf, mirrors, now);
    }
    l.link = None;
    let targets: BTreeSet<&str> = links
        .iter()
        .filter_map(|lf| lf.link.metadata.name.as_deref())
        .collect();
    match &f.mirrors {
        Ok(mirrors) => {
            let orphans: Vec<String> = mirrors
                .iter()
                .filter(|m| !targets.contains(m.target.as_str()))
                .map(|m| format!("{} (of {})", m.service, m.target))
                .collect();
            let name = "every mirror belongs to a Link";
            if orphans.is_empty() {
                l.ok(
                    "mirrors-without-link",
                    name,
                    format!("{} mirrors", mirrors.len()),
                );
            } else {
                l.fail(
                    "mirrors-without-link",
                    name,
                    format!("mirrors of no Link: {}", orphans.join(", ")),
                    "delete them with kubectl, or re-create the Link with `mc link`",
                );
            }
            ports(l, config, mirrors);
            let exported: Vec<&str> = mirrors
                .iter()
                .filter(|m| m.exported)
                .map(|m| m.service.as_str())
                .collect();
            if !exported.is_empty() {
                l.warn(
                    "exported-mirrors",
                    "no mirror is exported",
                    format!(
                        "exported mirrors (linked clusters refuse to mirror them): {}",
                        exported.join(", ")
                    ),
                    "unexport them: `kubectl label service NAME mc.dev/exported-`",
                );
            }
        }
        Err(e) => l.fail(
            "mirrors-without-link",
            "every mirror belongs to a Link",
            format!("cannot list mirror Services: {e}"),
            "check your access",
        ),
    }
}

fn ports(l: &mut Lines<'_>, config: &McConfig, mirrors: &[MirrorFact]) {
    let (lo, hi) = config.outbound_ports;
    let mut seen: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    let mut problems = Vec::new();
    for m in mirrors {
        match &m.gateway_ports {
            Ok(map) => {
                for p in map.values() {
                    seen.entry(*p).or_default().push(&m.service);
                    if !(lo..=hi).contains(p) {
                        problems.push(format!("{} uses {p}, outside {lo}-{hi}", m.service));
                    }
                }
            }
            Err(e) => problems.push(format!("{}: {e}", m.service)),
        }
    }
    for (p, users) in &seen {
        if users.len() > 1 {
            problems.push(format!("{p} is allocated to {}", users.join(" and ")));
        }
    }
    let name = "outbound gateway ports are unique and in range";
    if problems.is_empty() {
        l.ok(
            "outbound-ports",
            name,
            format!("{} ports allocated in {lo}-{hi}", seen.len()),
        );
    } else {
        l.fail(
            "outbound-ports",
            name,
            problems.join("; "),
            "delete the affected mirrors; mc mirror re-creates them with fresh ports",
        );
    }
}

fn link(
    l: &mut Lines<'_>,
    f: &ClusterFacts,
    config: &McConfig,
    lf: &LinkFacts,
    mirrors: &[MirrorFact],
    now: OffsetDateTime,
) {
    let link = &lf.link;
    let target = link.metadata.name.clone().unwrap_or_default();
    let ns = &f.namespace;
    let secret = &link.spec.credentials_secret;
    let relink = format!(
        "re-run `mc link --from {} --to {target}`",
        config.cluster_name
    );

    let name = "credentials Secret is present and valid";
    let credentials = match &lf.credentials {
        Ok(Some(Ok(c))) => {
            l.ok("link-credentials", name, format!("Secret {ns}/{secret}"));
            Some(c)
        }
        Ok(Some(Err(e))) => {
            l.fail("link-credentials", name, e.clone(), &relink);
            None
        }
        Ok(None) => {
            l.fail(
                "link-credentials",
                name,
                format!("Secret {ns}/{secret} not found"),
                &relink,
            );
            None
        }
        Err(e) => {
            l.fail(
                "link-credentials",
                name,
                format!("cannot read Secret {ns}/{secret}: {e}"),
                "check your access",
            );
            None
        }
    };
    if let Some(c) = credentials {
        let name = "credentials token is not about to expire";
        match c
            .token_expiry
            .and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok())
        {
            None => l.ok(
                "link-token",
                name,
                "the token has no expiry (legacy ServiceAccount token)",
            ),
            Some(exp) if exp <= now => l.fail(
                "link-token",
                name,
                format!("the token expired at {}", rfc3339(exp)),
                &relink,
            ),
            Some(exp) if (exp - now).whole_days() < WARN_DAYS => l.warn(
                "link-token",
                name,
                format!(
                    "the token expires in {} (at {})",
                    age(exp - now),
                    rfc3339(exp)
                ),
                &relink,
            ),
            Some(exp) => l.ok(
                "link-token",
                name,
                format!("expires in {} days", (exp - now).whole_days()),
            ),
        }
    }

    let name = "the target's API server is reachable from the controller";
    let last_sync = link
        .status
        .as_ref()
        .and_then(|s| s.last_sync_time.as_deref())
        .and_then(parse_time)
        .map(|t| format!("; last sync {} ago", age(now - t)))
        .unwrap_or_default();
    match cond(link, condition::REMOTE_REACHABLE) {
        Some(c) if c.status == "True" => {
            l.ok("link-remote", name, format!("{}{last_sync}", c.message))
        }
        Some(c) if c.status == "False" => {
            let fix = if c.reason == reason::CREDENTIALS_INVALID {
                relink.clone()
            } else {
                format!(
                    "check that {} is reachable from Pods of this cluster and that the credentials are not revoked; {relink} if they are",
                    link.spec.api_server
                )
            };
            l.fail(
                "link-remote",
                name,
                format!(
                    "{}: {}{last_sync}{}",
                    c.reason,
                    c.message,
                    last_warning(lf, now)
                ),
                &fix,
            )
        }
        other => l.warn(
            "link-remote",
            name,
            other
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "the controller has not reported on this Link yet".into()),
            "check that the mc-mirror Deployment is available",
        ),
    }

    let gw = link.status.as_ref().and_then(|s| s.gateway.as_ref());
    if let Some(t) = gw
        .and_then(|g| g.last_probe_time.as_deref())
        .and_then(parse_time)
    {
        let name = "the Link's status is up to date";
        if now - t > STALE_AFTER {
            l.warn(
                "link-status-fresh",
                name,
                format!(
                    "the last probe was recorded {} ago{}",
                    age(now - t),
                    last_warning(lf, now)
                ),
                "check that the mc-mirror Deployment is available",
            );
        } else {
            l.ok(
                "link-status-fresh",
                name,
                format!("last probe {} ago", age(now - t)),
            );
        }
    }

    if let Some(remote) = &lf.remote {
        remote_checks(l, f, config, lf, remote, mirrors, &relink);
    }

    let name = "the target's gateway is alive";
    match gw {
        Some(g) if g.alive => {
            let latency = g
                .latency_ms
                .as_ref()
                .map(|l| format!(", latency p50 {} ms, p95 {} ms, p99 {} ms", l.p50, l.p95, l.p99))
                .unwrap_or_default();
            l.ok("link-gateway", name, format!("alive{latency}"))
        }
        Some(g) => l.fail(
            "link-gateway",
            name,
            format!(
                "{}{}",
                cond(link, condition::GATEWAY_ALIVE)
                    .map(|c| c.message.clone())
                    .unwrap_or_else(|| format!(
                        "{} probes failed in a row",
                        g.consecutive_failures
                    )),
                last_warning(lf, now)
            ),
            &format!(
                "check the mc-gateway Deployment of {target} and that {}:{} is reachable from this cluster",
                link.spec.gateway_addresses.join(","),
                link.spec.probe.port
            ),
        ),
        None => l.warn(
            "link-gateway",
            name,
            "not probed yet",
            "check that the mc-mirror Deployment is available",
        ),
    }

    let conflicts = link
        .status
        .as_ref()
        .map(|s| s.conflicts.as_slice())
        .unwrap_or_default();
    let (daisy, others): (Vec<_>, Vec<_>) = conflicts
        .iter()
        .partition(|c| c.reason.contains(DAISY_CHAIN));
    let name = "no Service conflicts with a mirror";
    if others.is_empty() {
        l.ok("link-conflicts", name, "none");
    } else {
        l.fail(
            "link-conflicts",
            name,
            others
                .iter()
                .map(|c| format!("{}: {}", c.service, c.reason))
                .collect::<Vec<_>>()
                .join("; "),
            "rename or delete the Services that take the mirrors' names (or create the namespaces)",
        );
    }
    let name = "no mirror of a mirror (daisy chain)";
    if daisy.is_empty() {
        l.ok("link-daisy-chain", name, "none");
    } else {
        l.fail(
            "link-daisy-chain",
            name,
            format!(
                "{target} exports mirrors of other clusters, which are not mirrored: {}",
                daisy.iter().map(|c| c.service.as_str()).collect::<Vec<_>>().join(", ")
            ),
            &format!("unexport them in {target} (`kubectl label service NAME mc.dev/exported-`) and link to their origin cluster directly"),
        );
    }
}

/// Checks that compare the Link with its target read live.
fn remote_checks(
    l: &mut Lines<'_>,
    f: &ClusterFacts,
    config: &McConfig,
    lf: &LinkFacts,
    remote: &RemoteView,
    mirrors: &[MirrorFact],
    relink: &str,
) {
    let target = lf.link.metadata.name.clone().unwrap_or_default();
    let via = &remote.via;
    let name = "the target has mc installed with an anchor in common";
    let remote_config = match &remote.config {
        Ok(Some(Ok(c))) => c,
        Ok(Some(Err(e))) => {
            l.fail(
                "link-anchors",
                name,
                format!("{target}'s mc-config ({via}) is not valid: {e}"),
                "re-install mc in the target",
            );
            return;
        }
        Ok(None) => {
            l.fail(
                "link-anchors",
                name,
                format!("{target} has no mc-config ({via}): mc is not installed there"),
                "install mc in the target",
            );
            return;
        }
        Err(e) => {
            l.fail(
                "link-anchors",
                name,
                format!("cannot read {target}'s mc-config ({via}): {e}"),
                "check access to the target",
            );
            return;
        }
    };
    let local = ders(&config.ca_bundle).unwrap_or_default();
    match ders(&remote_config.ca_bundle) {
        Ok(theirs) => {
            let common: Vec<String> = theirs
                .iter()
                .filter(|t| local.iter().any(|m| m.as_ref() == t.as_ref()))
                .map(|d| common_name(d))
                .collect();
            if common.is_empty() {
                let names = |v: &[CertificateDer<'_>]| {
                    v.iter()
                        .map(|d| common_name(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                l.fail(
                    "link-anchors",
                    name,
                    format!(
                        "no anchor in common: {} trusts [{}] ({} anchors), {target} trusts [{}] ({via}); the gateways will refuse each other",
                        config.cluster_name,
                        names(&local),
                        local.len(),
                        names(&theirs)
                    ),
                    "install both clusters from one anchor (or add the other's anchor to both bundles during a rotation)",
                );
            } else {
                l.ok(
                    "link-anchors",
                    name,
                    format!("{} anchor(s) in common ({via})", common.len()),
                );
            }
        }
        Err(e) => l.fail(
            "link-anchors",
            name,
            format!("{target}'s anchor bundle cannot be read: {e}"),
            "re-install mc in the target",
        ),
    }

    if let Some(accounts) = &remote.remote_accounts {
        let account = remote_access_account(&config.cluster_name);
        let name = "the target still grants this cluster access";
        match accounts {
            Ok(a) if a.contains(&account) => l.ok("link-remote-access", name, format!("ServiceAccount {account} in {target}")),
            Ok(_) => l.fail(
                "link-remote-access",
                name,
                format!("{target} has no ServiceAccount {}/{account}: the credentials in {}/{} are revoked", f.namespace, f.namespace, link_secret_name(&target)),
                relink,
            ),
            Err(e) => l.warn("link-remote-access", name, format!("cannot list ServiceAccounts in {target}: {e}"), "check access to the target"),
        }
    }

    let Ok(exported) = &remote.exported else {
        if let Err(e) = &remote.exported {
            l.fail(
                "link-mirrored",
                "every exported Service of the target is mirrored",
                format!("cannot list {target}'s exported Services ({via}): {e}"),
                "check access to the target",
            );
        }
        return;
    };
    let ours: Vec<&MirrorFact> = mirrors.iter().filter(|m| m.target == target).collect();
    let conflicts: BTreeSet<&str> = lf
        .link
        .status
        .iter()
        .flat_map(|s| s.conflicts.iter().map(|c| c.service.as_str()))
        .collect();
    let missing: Vec<&str> = exported
        .iter()
        .filter(|(_, is_mirror)| !is_mirror)
        .map(|(s, _)| s.as_str())
        .filter(|s| !ours.iter().any(|m| m.remote.as_deref() == Some(*s)))
        .filter(|s| {
            let (ns, n) = s.split_once('/').unwrap_or(("", s));
            let local = format!("{ns}/{}", crate::mirror::names::mirror_name(n, &target));
            !conflicts.contains(*s) && !conflicts.contains(local.as_str())
        })
        .collect();
    let name = "every exported Service of the target is mirrored";
    if missing.is_empty() {
        l.ok("link-mirrored", name, format!("{} mirrored", ours.len()));
    } else {
        l.fail(
            "link-mirrored",
            name,
            format!("not mirrored yet: {}", missing.join(", ")),
            "check that the mc-mirror Deployment is available and see its logs",
        );
    }
    let exported: BTreeSet<&str> = exported.iter().map(|(s, _)| s.as_str()).collect();
    let orphans: Vec<String> = ours
        .iter()
        .filter(|m| m.remote.as_deref().is_none_or(|r| !exported.contains(r)))
        .map(|m| {
            format!(
                "{} ({} is not exported by {target})",
                m.service,
                m.remote.as_deref().unwrap_or("?")
            )
        })
        .collect();
    let name = "no orphan mirrors";
    if orphans.is_empty() {
        l.ok("link-orphans", name, "none");
    } else {
        l.fail(
            "link-orphans",
            name,
            orphans.join("; "),
            "check that the mc-mirror Deployment is available (it deletes them), or delete them with kubectl",
        );
    }
}

#[cfg(test)]
mod tests;
