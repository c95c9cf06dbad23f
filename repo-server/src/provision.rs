//! Guest install routes, served from the guest registry of `xenprov-guest`:
//!
//! - `GET /ks/NAME/TOKEN`, `GET /preseed/NAME/TOKEN`: the guest's kickstart or preseed, rendered
//!   now from its definition, only while it installs and only for that install's token; 404
//!   otherwise, so nothing (no password hash) reaches an unknown client.
//! - `POST /events/NAME/TOKEN`: `started`, `done` or `failed` plus a log tail; drives the state.
//!
//! The registry does blocking file I/O under a lock, so it runs on the blocking pool.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use xenprov_core::render::Templates;
use xenprov_registry::settings::Paths;
use xenprov_registry::{LOG_CAP, Refused, Registry};

use crate::http::body::Body;
use crate::http::responses::{bytes_response, error, method_not_allowed};

/// How long a client has to send a whole event body once its token is checked: the handler holds
/// the connection open while it reads, so a body trickling in must not hold it for ever.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A request body the routes can read: the server's, or one built in process (tests).
pub trait RequestBody: Send + 'static {
    /// The whole body, or `None` when it is longer than `cap` or cannot be read.
    fn read_capped(self, cap: usize) -> impl Future<Output = Option<Bytes>> + Send;
}

impl<B> RequestBody for B
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    async fn read_capped(self, cap: usize) -> Option<Bytes> {
        Some(Limited::new(self, cap).collect().await.ok()?.to_bytes())
    }
}

pub struct Provision {
    registry: Arc<Registry>,
}

/// The registry and templates named by xenprov-guest's own settings file at `path`, so that both
/// tools always agree on where guests are, and the guest tool's paths (console logs).
pub fn open_guest_registry(path: &Path) -> anyhow::Result<(Registry, Paths)> {
    let cfg = xenprov_registry::settings::Config::load(path)?;
    let templates = match &cfg.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::builtin(),
    };
    Ok((Registry::open(&cfg.paths.registry, templates)?, cfg.paths))
}

/// Unix seconds, as the registries record them.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Provision {
    pub fn new(registry: Registry) -> Provision {
        Provision {
            registry: Arc::new(registry),
        }
    }

    /// Routes over a registry the server shares with its status page.
    pub fn shared(registry: Arc<Registry>) -> Provision {
        Provision { registry }
    }

    pub async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let mut parts = path.split('/').skip(1);
        let (route, name, token) = (parts.next(), parts.next(), parts.next());
        let (Some(route), Some(name), Some(token), None) = (route, name, token, parts.next())
        else {
            return error(StatusCode::NOT_FOUND, req.method() == Method::HEAD);
        };
        let (name, token, route) = (name.to_owned(), token.to_owned(), route.to_owned());
        let reg = self.registry.clone();
        match (route.as_str(), req.method().clone()) {
            ("events", Method::POST) => {
                let (open, record) = ((reg.clone(), name.clone(), token.clone()), reg);
                event(
                    req,
                    move || open.0.is_armed(&open.1, &open.2, now()),
                    move |body| {
                        let state = record.record_event(&name, &token, &body, now())?;
                        Ok(format!("{state:?}").to_lowercase())
                    },
                )
                .await
            }
            ("events", _) => method_not_allowed("POST"),
            (_, m @ (Method::GET | Method::HEAD)) => {
                let rendered = tokio::task::spawn_blocking(move || {
                    reg.render_for(&route, &name, &token, now())
                })
                .await
                .ok()
                .flatten();
                match rendered {
                    Some(t) => text(StatusCode::OK, t, m == Method::HEAD),
                    None => error(StatusCode::NOT_FOUND, m == Method::HEAD),
                }
            }
            _ => method_not_allowed("GET, HEAD"),
        }
    }
}

/// `POST` of an install event, for the guests' routes and the fleet's alike. `is_open` says whether
/// the request's token opens an install, and is asked before any body is read, so that a client
/// without the token gets its 404 without sending one; `record` takes the body (capped at the log
/// tail's `LOG_CAP`, plus room for the event line, and due within `BODY_DEADLINE`) and gives the
/// state the install is in now. Both run on the blocking pool.
pub(crate) async fn event<B: RequestBody>(
    req: Request<B>,
    is_open: impl FnOnce() -> bool + Send + 'static,
    record: impl FnOnce(Bytes) -> Result<String, Refused> + Send + 'static,
) -> Response<Body> {
    if !matches!(tokio::task::spawn_blocking(is_open).await, Ok(true)) {
        return error(StatusCode::NOT_FOUND, false);
    }
    let http1 = req.version() <= Version::HTTP_11;
    let read = req.into_body().read_capped(LOG_CAP + 4096);
    let body = match tokio::time::timeout(BODY_DEADLINE, read).await {
        Ok(Some(body)) => body,
        Ok(None) => return error(StatusCode::PAYLOAD_TOO_LARGE, false),
        Err(_) => return timed_out(http1),
    };
    match tokio::task::spawn_blocking(move || record(body)).await {
        Ok(Ok(state)) => text(StatusCode::OK, state + "\n", false),
        Ok(Err(Refused::BadEvent(why))) => text(StatusCode::BAD_REQUEST, why + "\n", false),
        Ok(Err(Refused::NotFound)) | Err(_) => error(StatusCode::NOT_FOUND, false),
    }
}

/// The paths these routes own; they shadow tree directories of the same names.
pub fn is_route(path: &str) -> bool {
    ["/ks/", "/preseed/", "/events/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// `path` as the access log writes it: the token of an install route replaced by `-`, so that a
/// log reader learns which install was asked for, never how to ask for it.
pub fn log_path(path: &str) -> std::borrow::Cow<'_, str> {
    let parts: Vec<&str> = path.split('/').collect();
    let named = match parts.as_slice() {
        ["", "ks" | "preseed" | "events" | "answer", _, _] => 3,
        ["", "events", "host", _, _] => 4,
        _ => return path.into(),
    };
    let mut kept = parts[..named].join("/");
    kept.push_str("/-");
    kept.into()
}

/// 408 for a body that missed `BODY_DEADLINE`; on HTTP/1 the connection closes with it, since the
/// rest of that body would otherwise be read as the next request.
fn timed_out(http1: bool) -> Response<Body> {
    let mut resp = error(StatusCode::REQUEST_TIMEOUT, false);
    if http1 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A text answer of an install route: rendered per install, holding a token or a password hash,
/// so never cached anywhere.
pub(crate) fn text(status: StatusCode, body: String, head: bool) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    bytes_response(
        status,
        "text/plain; charset=utf-8",
        headers,
        Bytes::from(body),
        head,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_never_reach_the_access_log() {
        for (path, logged) in [
            ("/ks/web1/0123abcd", "/ks/web1/-"),
            ("/preseed/web1/0123abcd", "/preseed/web1/-"),
            ("/events/web1/0123abcd", "/events/web1/-"),
            ("/answer/rack-a1/0123abcd", "/answer/rack-a1/-"),
            ("/events/host/rack-a1/0123abcd", "/events/host/rack-a1/-"),
            (
                "/debian/dists/stable/InRelease",
                "/debian/dists/stable/InRelease",
            ),
            ("/ks/web1", "/ks/web1"),
        ] {
            assert_eq!(super::log_path(path), logged);
        }
    }
}
