//! The host's status, for people and for scripts, read-only and without secrets:
//! - `GET /ui/`: the status page (`page`), plain server-rendered tables that read without
//!   JavaScript, kept current by a small script that fetches the page again every two seconds;
//!   its assets under `/ui/` are compiled in;
//! - `GET /ui/guests/NAME/console`: the tail of a guest's console log;
//! - `GET /api/status`: the page's facts as JSON (`snapshot`);
//! - the guests' series of `/metrics` (`exposition`).
//!
//! `sampler` reads Xen every few seconds, so that none of these runs `xl` however often it is asked;
//! `host` reads what the dom0 says of itself. Registry and fleet files are read when asked, on the
//! blocking pool, so an install event shows at the next update.

pub mod exposition;
pub mod host;
pub mod page;
pub mod sampler;
pub mod snapshot;

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use xenprov_core::render::Templates;

use crate::content::inventory::{Item, items};
use crate::http::body::Body;
use crate::http::responses::{bytes_response, error, get_or_head, method_not_allowed};
use crate::provision::now;
use crate::settings::config::Config;
use crate::status::page::Assets;
use crate::status::snapshot::{Snapshot, Sources};

/// How long the description of the mounts is reused: describing an ISO reads its directory tree.
const CONTENT_TTL: Duration = Duration::from_secs(30);
/// The most of a console log the page links to.
const CONSOLE_TAIL: u64 = 64 << 10;

const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const ICON: &str = include_str!("assets/favicon.svg");

/// The mounts as last described, and when.
type Described = Arc<Mutex<Option<(Instant, Vec<Item>)>>>;

#[derive(Clone)]
pub struct Status {
    sources: Arc<Sources>,
    config: Arc<Config>,
    content: Described,
    templates: Arc<Templates>,
    /// `?v=` of each asset's URL: its digest, so a browser keeps it until it changes.
    versions: [String; 3],
}

/// What a status route answers before it is made a response.
enum Answer {
    Text(StatusCode, &'static str, String),
    Asset(&'static str, &'static str),
    Redirect(&'static str),
}

impl Status {
    pub fn new(sources: Sources, config: &Config) -> Status {
        let digest = |s: &str| hex::encode(&Sha256::digest(s.as_bytes())[..6]);
        Status {
            sources: Arc::new(sources),
            config: Arc::new(config.clone()),
            content: Arc::default(),
            templates: Arc::new(Templates::builtin()),
            versions: [digest(SCRIPT), digest(STYLE), digest(ICON)],
        }
    }

    /// The paths these routes own; they shadow tree directories of the same names.
    pub fn is_route(path: &str) -> bool {
        path == "/ui" || path.starts_with("/ui/") || path.starts_with("/api/")
    }

    pub async fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        let Some(head) = get_or_head(req) else {
            return method_not_allowed("GET, HEAD");
        };
        let path = req.uri().path().to_owned();
        let answer = match path.as_str() {
            "/ui" => Answer::Redirect("/ui/"),
            "/ui/app.js" => Answer::Asset("text/javascript; charset=utf-8", SCRIPT),
            "/ui/style.css" => Answer::Asset("text/css; charset=utf-8", STYLE),
            "/ui/favicon.svg" => Answer::Asset("image/svg+xml", ICON),
            "/ui/" | "/api/status" => {
                let snapshot = self.snapshot().await;
                if path == "/api/status" {
                    let json = serde_json::to_string_pretty(&snapshot).unwrap_or_default() + "\n";
                    Answer::Text(StatusCode::OK, "application/json", json)
                } else {
                    match self.render(&snapshot) {
                        Ok(html) => Answer::Text(StatusCode::OK, "text/html; charset=utf-8", html),
                        Err(e) => {
                            tracing::error!("status page: {e}");
                            return error(StatusCode::INTERNAL_SERVER_ERROR, head);
                        }
                    }
                }
            }
            p => match p
                .strip_prefix("/ui/guests/")
                .and_then(|r| r.strip_suffix("/console"))
            {
                Some(name) => match self.console_tail(name).await {
                    Some(text) => Answer::Text(StatusCode::OK, "text/plain; charset=utf-8", text),
                    None => return error(StatusCode::NOT_FOUND, head),
                },
                None => return error(StatusCode::NOT_FOUND, head),
            },
        };
        respond(answer, head)
    }

    /// Everything shown now (the registry and fleet read on the blocking pool).
    pub async fn snapshot(&self) -> Snapshot {
        let (sources, config, cache) = (
            self.sources.clone(),
            self.config.clone(),
            self.content.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let content = {
                let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
                match &*c {
                    Some((at, items)) if at.elapsed() < CONTENT_TTL => items.clone(),
                    _ => {
                        let fresh = items(&config);
                        *c = Some((Instant::now(), fresh.clone()));
                        fresh
                    }
                }
            };
            sources.gather(content, now())
        })
        .await
        .expect("gathering a snapshot does not panic")
    }

    /// The page of `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, xenprov_core::render::RenderError> {
        let [script, style, icon] = &self.versions;
        let assets = Assets {
            script: format!("/ui/app.js?v={script}"),
            style: format!("/ui/style.css?v={style}"),
            icon: format!("/ui/favicon.svg?v={icon}"),
        };
        self.templates
            .render("templates/status-page.html", &page::view(snapshot, assets))
    }

    /// The guests' part of `/metrics` (blocking: it reads the registry).
    pub fn exposition(&self) -> String {
        exposition::render(&self.sources, now())
    }

    /// The last `CONSOLE_TAIL` bytes of guest `name`'s console log, from its first whole line.
    async fn console_tail(&self, name: &str) -> Option<String> {
        let guests = self.sources.guests.as_ref()?;
        xenprov_core::guest::check_guest_name(name).ok()?;
        let path = guests.paths.console_log_of(name);
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&path).ok()?;
            let len = f.metadata().ok()?.len();
            let from = len.saturating_sub(CONSOLE_TAIL);
            f.seek(SeekFrom::Start(from)).ok()?;
            let mut data = Vec::new();
            f.read_to_end(&mut data).ok()?;
            let text = String::from_utf8_lossy(&data).into_owned();
            Some(match (from > 0, text.split_once('\n')) {
                (true, Some((_, rest))) => rest.to_string(),
                _ => text,
            })
        })
        .await
        .ok()?
    }
}

fn respond(answer: Answer, head: bool) -> Response<Body> {
    let mut headers = HeaderMap::new();
    let h = |v: &'static str| HeaderValue::from_static(v);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, h("nosniff"));
    headers.insert(header::REFERRER_POLICY, h("no-referrer"));
    match answer {
        Answer::Text(status, media_type, text) => {
            headers.insert(header::CACHE_CONTROL, h("no-store"));
            if media_type.starts_with("text/html") {
                // Its own script and style only, and never in a frame.
                headers.insert(
                    header::CONTENT_SECURITY_POLICY,
                    h("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
                );
            }
            bytes_response(status, media_type, headers, Bytes::from(text), head)
        }
        Answer::Asset(media_type, text) => {
            headers.insert(header::CACHE_CONTROL, h("public, max-age=86400, immutable"));
            bytes_response(
                StatusCode::OK,
                media_type,
                headers,
                Bytes::from_static(text.as_bytes()),
                head,
            )
        }
        Answer::Redirect(to) => {
            headers.insert(header::LOCATION, h(to));
            bytes_response(
                StatusCode::PERMANENT_REDIRECT,
                "text/plain; charset=utf-8",
                headers,
                Bytes::from_static(b"see /ui/\n"),
                head,
            )
        }
    }
}
