//! HTTPS front: TLS accept, HTTP/1.1 + HTTP/2, authentication, impersonation, authorization and
//! routing to discovery, OpenAPI, faults and the resource handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::{self, authorize};
use super::context::{Body, Ctx, Reply, RequestInfo, Shared, Warnings, full};
use super::{discovery, faults, handlers, openapi};
use crate::sim::cluster::registry::{Registry, ResourceType, Sub};
use crate::sim::semantics::rbac::Attributes;
use crate::sim::semantics::status::{self, ApiError};

/// Largest request body accepted: kube-apiserver's `MaxRequestBodyBytes` (3 MiB); larger
/// bodies are refused with 413.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Accepts connections until `stop` fires. Each connection is closed at once when the faults
/// ask for all connections to drop.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, stop: CancellationToken) {
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.pki.server_config.clone());
    let accept_shared = shared.clone();
    crate::runtime::accept_loop(listener, "sim", stop, move |tcp, peer| {
        let shared = accept_shared.clone();
        if shared.faults.is_unreachable() {
            // Closing without a TLS handshake looks like a dead server to the client.
            drop(tcp);
            return;
        }
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut kill = shared.faults.connection_killer();
            let conn = async {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let svc_shared = shared.clone();
                let service = hyper::service::service_fn(move |req| {
                    let shared = svc_shared.clone();
                    async move { Ok::<_, Infallible>(handle(shared, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(err) = builder.serve_connection(TokioIo::new(tls), service).await {
                    tracing::debug!(%peer, %err, "connection ended with an error");
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = kill.changed() => {}
            }
        });
    })
    .await;
}

fn respond(reply: Reply) -> Response<Body> {
    let (code, content_type, body) = match reply {
        Reply::Json {
            code,
            body,
            content_type,
        } => {
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            (code, content_type, full(bytes))
        }
        Reply::Stream { body, content_type } => (200, content_type, body),
        Reply::Text { code, body } => (code, "text/plain; charset=utf-8", full(body)),
        Reply::Bytes {
            code,
            body,
            content_type,
        } => (code, content_type, full(body)),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    resp
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = respond(Reply::json(err.code, err.body()));
    if let Some(secs) = err.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// A path segment, percent-decoded ('+' is a plus in paths, unlike in query strings).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let warnings = Warnings::default();
    let mut resp = match handle_inner(shared, req, warnings.clone()).await {
        Ok(reply) => respond(reply),
        Err(err) => error_response(&err),
    };
    for text in warnings.take() {
        // RFC 7234 warn-code 299 with agent "-", as kube-apiserver sends warnings.
        if let Ok(v) = header::HeaderValue::from_str(&format!("299 - {text:?}")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

async fn handle_inner(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    warnings: Warnings,
) -> Result<Reply, ApiError> {
    let latency = shared.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query());
    // Health and version are public, as on a real cluster (system:public-info-viewer).
    match path.as_str() {
        "/healthz" | "/readyz" | "/livez" => {
            return Ok(Reply::Text {
                code: 200,
                body: "ok".into(),
            });
        }
        "/version" | "/version/" => return Ok(Reply::json(200, version_info())),
        _ => {}
    }
    let user = auth::authenticate(&shared, &parts.headers)?;
    let user = auth::impersonate(&shared, user, &parts.headers)?;
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    format!("Request entity too large: limit is {MAX_BODY}"),
                )
            } else {
                status::bad_request(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    let ctx = Ctx {
        shared: shared.clone(),
        method: parts.method.clone(),
        path: path.clone(),
        query,
        headers: parts.headers,
        user,
        body,
        warnings,
    };
    route(ctx).await
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4",
        "gitCommit": "mc-sim",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T00:00:00Z",
        "goVersion": "go1.23.8",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

async fn route(ctx: Ctx) -> Result<Reply, ApiError> {
    let segs: Vec<String> = ctx
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let non_resource = |ctx: &Ctx| -> Result<(), ApiError> {
        let verb = match ctx.method {
            Method::GET | Method::HEAD => "get",
            Method::POST => "post",
            Method::PUT => "put",
            Method::DELETE => "delete",
            _ => "patch",
        };
        let attrs = Attributes {
            verb: verb.into(),
            path: ctx.path.clone(),
            resource_request: false,
            ..Default::default()
        };
        authorize(&ctx.shared, &ctx.user, &attrs)
    };
    let registry = ctx.shared.store.lock().registry.clone();
    match segs.as_slice() {
        ["mc-sim", "faults"] => {
            if !ctx.is_admin() {
                return Err(status::forbidden(
                    format!("User \"{}\" may not use the fault API", ctx.user.username),
                    "",
                    "",
                    "",
                ));
            }
            faults::handle_http(&ctx.shared.faults, &ctx.method, &ctx.body)
                .map(|body| Reply::json(200, body))
        }
        [".well-known", "openid-configuration"] => {
            non_resource(&ctx)?;
            let issuer = ctx.shared.issuer.clone();
            Ok(Reply::json(
                200,
                json!({
                    "issuer": issuer,
                    "jwks_uri": format!("https://{}/openid/v1/jwks", ctx.shared.addr()),
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                }),
            ))
        }
        ["openid", "v1", "jwks"] => {
            non_resource(&ctx)?;
            Ok(Reply::json(200, ctx.shared.signer.jwks()))
        }
        ["api"] => {
            non_resource(&ctx)?;
            Ok(discovery::api_root(&ctx, &registry))
        }
        ["apis"] => {
            non_resource(&ctx)?;
            Ok(discovery::apis_root(&ctx, &registry))
        }
        ["openapi", "v2"] => {
            non_resource(&ctx)?;
            Ok(openapi::v2())
        }
        ["openapi", "v3"] => {
            non_resource(&ctx)?;
            Ok(Reply::json(200, openapi::root(&registry)))
        }
        ["openapi", "v3", rest @ ..] => {
            non_resource(&ctx)?;
            openapi::group_version(&registry, rest)
                .map(|doc| Reply::json(200, doc))
                .ok_or_else(status::no_resource)
        }
        ["api", version] => {
            non_resource(&ctx)?;
            discovery::resource_list(&registry, "", version).ok_or_else(status::no_resource)
        }
        ["apis", group] => {
            non_resource(&ctx)?;
            discovery::api_group(&registry, group).ok_or_else(status::no_resource)
        }
        ["apis", group, version] => {
            non_resource(&ctx)?;
            discovery::resource_list(&registry, group, version).ok_or_else(status::no_resource)
        }
        ["api", version, rest @ ..] => {
            let info = parse_resource_path("", version, rest).ok_or_else(status::no_resource)?;
            resource_request(ctx, &registry, info).await
        }
        ["apis", group, version, rest @ ..] => {
            let info = parse_resource_path(group, version, rest).ok_or_else(status::no_resource)?;
            resource_request(ctx, &registry, info).await
        }
        _ => {
            non_resource(&ctx)?;
            Err(status::no_resource())
        }
    }
}

/// `namespaces/{ns}/{plural}[/{name}[/{sub}]]` or `{plural}[/{name}[/{sub}]]`, with the
/// namespace's own subresources (`namespaces/x/status`) handled like kube-apiserver does.
fn parse_resource_path(group: &str, version: &str, rest: &[&str]) -> Option<RequestInfo> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, third, tail @ ..] if !matches!(*third, "status" | "finalize") => {
            (Some(ns.to_string()), {
                let mut v = vec![*third];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(RequestInfo {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name,
        sub,
    })
}

pub fn verb_of(method: &Method, info: &RequestInfo, watch: bool) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => {
            if watch {
                "watch"
            } else if info.name.is_some() {
                "get"
            } else {
                "list"
            }
        }
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if info.name.is_some() {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    }
}

async fn resource_request(
    ctx: Ctx,
    registry: &Registry,
    info: RequestInfo,
) -> Result<Reply, ApiError> {
    let watch = ctx.q_bool("watch");
    let verb = verb_of(&ctx.method, &info, watch);
    // Authorize before revealing whether the type exists, like the real server.
    let attrs = Attributes {
        verb: verb.to_string(),
        api_group: info.group.clone(),
        resource: info.plural.clone(),
        subresource: info.sub.clone().unwrap_or_default(),
        name: info.name.clone().unwrap_or_default(),
        namespace: info.namespace.clone().unwrap_or_default(),
        path: ctx.path.clone(),
        resource_request: true,
    };
    authorize(&ctx.shared, &ctx.user, &attrs)?;
    let rt: Arc<ResourceType> = registry
        .find(&info.group, &info.version, &info.plural)
        .ok_or_else(status::no_resource)?;
    if !rt.namespaced && info.namespace.is_some() {
        return Err(status::no_resource());
    }
    if let Some(sub) = &info.sub {
        let known = match sub.as_str() {
            "status" => rt.has_status(),
            "scale" => rt.subresources.contains(&Sub::Scale),
            "token" => rt.subresources.contains(&Sub::Token),
            "log" => rt.key() == "/pods",
            _ => false,
        };
        if !known {
            return Err(status::no_resource());
        }
    }
    if rt.create_only && ctx.method != Method::POST {
        return Err(status::method_not_allowed());
    }
    if matches!(
        ctx.method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        ctx.shared.faults.maybe_fail_write()?;
    }
    if watch && matches!(ctx.method, Method::GET) {
        return super::watch::watch(&ctx, &rt, &info);
    }
    handlers::dispatch(&ctx, &rt, &info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_paths_are_split_like_the_api_server() {
        let i = parse_resource_path("", "v1", &["namespaces", "demo", "services", "web"])
            .expect("valid");
        assert_eq!(i.namespace.as_deref(), Some("demo"));
        assert_eq!(i.plural, "services");
        assert_eq!(i.name.as_deref(), Some("web"));
        let ns = parse_resource_path("", "v1", &["namespaces", "demo", "status"]).expect("valid");
        assert_eq!(ns.namespace, None);
        assert_eq!(ns.plural, "namespaces");
        assert_eq!(ns.sub.as_deref(), Some("status"));
        let all = parse_resource_path("apps", "v1", &["deployments"]).expect("valid");
        assert_eq!(all.namespace, None);
        assert!(parse_resource_path("", "v1", &["a", "b", "c", "d"]).is_none());
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = parse_query(Some("labelSelector=app%3Dweb&limit=500&x"));
        assert_eq!(q["labelSelector"], "app=web");
        assert_eq!(q["limit"], "500");
        assert_eq!(q["x"], "");
    }
}
