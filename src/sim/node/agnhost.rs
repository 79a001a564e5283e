//! agnhost (`registry.k8s.io/e2e-test-images/agnhost`), the image of Kubernetes' end-to-end
//! tests, as in-process tasks bound to the Pod IP: `serve-hostname` and `netexec`, the
//! subcommands tests and demos need. A test written against them also runs on a real cluster.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::logs::ContainerLog;

pub const SUBCOMMANDS: &str = "serve-hostname, netexec";

/// What one agnhost invocation serves.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Every HTTP request (or, with `--tcp`, every TCP connection) is answered with the name.
    ServeHostname { port: u16, http: bool },
    /// `/hostname`, `/echo?msg=`, `/clientip`, `/healthz`.
    Netexec { port: u16 },
}

/// Parses `[/agnhost] SUBCOMMAND [--flag=value | --flag value]...`.
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let mut args = argv.iter().map(String::as_str).peekable();
    if args.peek().is_some_and(|a| a.ends_with("agnhost")) {
        args.next();
    }
    let sub = args.next().unwrap_or("");
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    while let Some(a) = args.next() {
        let a = a.trim_start_matches('-');
        match a.split_once('=') {
            Some((k, v)) => flags.push((k.to_string(), Some(v.to_string()))),
            None => {
                let value = args
                    .peek()
                    .filter(|n| !n.starts_with('-'))
                    .map(|n| n.to_string());
                if value.is_some() {
                    args.next();
                }
                flags.push((a.to_string(), value));
            }
        }
    }
    let flag = |name: &str| {
        flags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let port = |name: &str, default: u16| -> Result<u16, String> {
        match flag(name).flatten() {
            Some(v) => v.parse().map_err(|_| format!("invalid --{name} {v}")),
            None => Ok(default),
        }
    };
    let boolean = |name: &str, default: bool| match flag(name) {
        None => default,
        Some(None) => true,
        Some(Some(v)) => v != "false",
    };
    match sub {
        "serve-hostname" => Ok(Command::ServeHostname {
            port: port("port", 9376)?,
            http: boolean("http", true) && !boolean("tcp", false),
        }),
        "netexec" => Ok(Command::Netexec {
            port: port("http-port", 8080)?,
        }),
        other => Err(format!(
            "agnhost subcommand {other:?} is not simulated; the simulated node runs: {SUBCOMMANDS}"
        )),
    }
}

/// Serves until the task is aborted; an error is what the container prints before exiting.
pub async fn serve(
    cmd: Command,
    ip: IpAddr,
    hostname: String,
    log: Arc<ContainerLog>,
) -> std::io::Result<()> {
    let (port, http) = match cmd {
        Command::ServeHostname { port, http } => (port, http),
        Command::Netexec { port } => (port, true),
    };
    let netexec = matches!(cmd, Command::Netexec { .. });
    let listener = TcpListener::bind((ip, port)).await?;
    log.write(format!("Serving on port {port}.\n").as_bytes());
    let hostname: Arc<str> = hostname.into();
    loop {
        let (mut stream, peer) = listener.accept().await?;
        let hostname = hostname.clone();
        if !http {
            tokio::spawn(async move {
                let _ = stream.write_all(hostname.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let body = if netexec {
                    netexec_answer(&req, &hostname, peer)
                } else {
                    Ok(hostname.to_string())
                };
                async move {
                    let resp = match body {
                        Ok(text) => Response::new(Full::new(Bytes::from(text))),
                        Err((code, text)) => {
                            let mut r = Response::new(Full::new(Bytes::from(text)));
                            *r.status_mut() = code;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn netexec_answer(
    req: &Request<hyper::body::Incoming>,
    hostname: &str,
    peer: SocketAddr,
) -> Result<String, (http::StatusCode, String)> {
    let query = |key: &str| -> Option<String> {
        form_urlencoded::parse(req.uri().query()?.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    match req.uri().path() {
        "/hostname" => Ok(hostname.to_string()),
        "/echo" => Ok(query("msg").unwrap_or_default()),
        "/clientip" => Ok(peer.to_string()),
        "/healthz" | "/" => Ok(String::new()),
        other => Err((
            http::StatusCode::NOT_FOUND,
            format!("404 page not found: {other}\n"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn subcommands_parse_like_agnhost() {
        assert_eq!(
            parse(&args("/agnhost serve-hostname")),
            Ok(Command::ServeHostname {
                port: 9376,
                http: true
            })
        );
        assert_eq!(
            parse(&args("serve-hostname --tcp --port=9000")),
            Ok(Command::ServeHostname {
                port: 9000,
                http: false
            })
        );
        assert_eq!(
            parse(&args("netexec --http-port 8081")),
            Ok(Command::Netexec { port: 8081 })
        );
        assert!(
            parse(&args("pause"))
                .unwrap_err()
                .contains("serve-hostname")
        );
    }

    #[test]
    fn echo_messages_are_percent_decoded() {
        let decoded = |q: &str| -> String {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "msg")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        assert_eq!(decoded("msg=a%20b+c"), "a b c");
        assert_eq!(decoded("msg=100%"), "100%");
    }
}
