//! Routes of the repo server: service endpoints by exact path, everything else from the static tree.
//!
//! Service paths shadow files of the same name at the top of the tree.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::content::pull_through::PullThrough;
use crate::fleet::Fleet;
use crate::http::body::Body;
use crate::http::metrics::Metrics;
use crate::http::responses::{bytes_response, error, get_or_head, method_not_allowed};
use crate::provision::{Provision, RequestBody};
use crate::settings::config::Config;
use crate::static_files::StaticFiles;
use crate::static_files::cache::FileCache;
use crate::static_files::path::SafePath;
use crate::static_files::tree::Node;
use crate::status::Status;
use crate::status::sampler::{self, Sampler};
use crate::status::snapshot::{Guests, Sources};

pub struct Router {
    files: StaticFiles,
    metrics: Arc<Metrics>,
    provision: Option<Provision>,
    fleet: Option<Fleet>,
    status: Option<Status>,
    upstreams: HashMap<OsString, Arc<PullThrough>>,
}

impl Router {
    pub fn new(files: StaticFiles, metrics: Arc<Metrics>) -> Router {
        Router {
            files,
            metrics,
            provision: None,
            fleet: None,
            status: None,
            upstreams: HashMap::new(),
        }
    }

    /// Serves `/NAME/` of each upstream from its cache, fetching and verifying what is missing.
    pub fn with_upstreams(mut self, upstreams: Vec<Arc<PullThrough>>) -> Router {
        self.upstreams = upstreams
            .into_iter()
            .map(|u| (OsString::from(u.name()), u))
            .collect();
        self
    }

    /// Adds the guest install routes (`/ks/`, `/preseed/`, `/events/`).
    pub fn with_provision(mut self, provision: Provision) -> Router {
        self.provision = Some(provision);
        self
    }

    /// Adds the fleet's netboot routes (`/boot.ipxe`, `/ipxe`, `/answer/`, `/events/host/`).
    pub fn with_fleet(mut self, fleet: Fleet) -> Router {
        self.fleet = Some(fleet);
        self
    }

    /// Adds the status page (`/ui/`), its JSON (`/api/`) and the guests' series of `/metrics`.
    pub fn with_status(mut self, status: Status) -> Router {
        self.status = Some(status);
        self
    }

    /// The routes for `config`: its root directory on disk with its mounts (`mounts`), and its file cache.
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Router> {
        let crate::mounts::Served { tree, upstreams } = crate::mounts::build(config)?;
        let cache = FileCache::new(config.cache_max_file, config.cache_capacity);
        let mut router = Router::new(
            StaticFiles::new(tree, cache, metrics.clone()),
            metrics.clone(),
        )
        .with_upstreams(upstreams.clone());
        let mut guests = None;
        if let Some(path) = &config.guests {
            let (registry, paths) = crate::provision::open_guest_registry(path)?;
            let registry = Arc::new(registry);
            router = router.with_provision(Provision::shared(registry.clone()));
            guests = Some(Guests { registry, paths });
        }
        let fleet = Fleet::from_config(config);
        if let Some(fleet) = &fleet {
            crate::fleet::report(fleet.dir());
            router = router.with_fleet(fleet.clone());
        }
        if !config.status_page {
            return Ok(router);
        }
        let source = sampler::dom0().map(|()| Box::new(sampler::Xl) as Box<dyn sampler::Source>);
        let sources = Sources {
            started: crate::provision::now(),
            sampler: Sampler::start(source, metrics.clone()),
            metrics,
            guests,
            fleet,
            upstreams,
        };
        Ok(router.with_status(Status::new(sources, config)))
    }

    pub async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        if let Some(f) = &self.fleet
            && Fleet::is_route(req.uri().path())
        {
            return f.handle(req).await;
        }
        if let Some(p) = &self.provision
            && crate::provision::is_route(req.uri().path())
        {
            return p.handle(req).await;
        }
        if let Some(s) = &self.status
            && Status::is_route(req.uri().path())
        {
            return s.handle(&req).await;
        }
        match req.uri().path() {
            "/healthz" => self.health(&req),
            "/metrics" => self.metrics(&req).await,
            path => match self.upstream_of(path) {
                Some((upstream, rel, path)) => self.through_cache(&req, upstream, &rel, path).await,
                None => self.files.serve(&req).await,
            },
        }
    }

    /// The upstream `path` is under, the path below it, and `path` decoded (decoded once: the
    /// cache's hits are served from it). Paths that do not decode are left to the static handler,
    /// which refuses them.
    fn upstream_of(&self, path: &str) -> Option<(&Arc<PullThrough>, String, SafePath)> {
        if self.upstreams.is_empty() {
            return None; // the common case pays no path decoding here
        }
        let path = SafePath::from_uri_path(path).ok()?;
        let (name, rest) = path.split_first()?;
        let upstream = self.upstreams.get(name)?;
        let rel = rest.as_path().to_str()?.to_string();
        Some((upstream, rel, path))
    }

    /// Hits are plain files of the cache; a miss is fetched, verified, then served the same way.
    async fn through_cache<B>(
        &self,
        req: &Request<B>,
        upstream: &Arc<PullThrough>,
        rel: &str,
        path: SafePath,
    ) -> Response<Body> {
        let Some(head) = get_or_head(req) else {
            return method_not_allowed("GET, HEAD");
        };
        if let Err(f) = upstream.refresh_if_stale(rel).await {
            return error(f.status, head);
        }
        let resp = self.files.serve_path(req, &path, head).await;
        if resp.status() != StatusCode::NOT_FOUND || rel.is_empty() {
            return resp;
        }
        match upstream.fetch(rel).await {
            Ok(()) => self.files.serve_path(req, &path, head).await,
            Err(f) => error(f.status, head),
        }
    }

    /// 200 while the tree's root can be opened, 503 otherwise.
    fn health<B>(&self, req: &Request<B>) -> Response<Body> {
        let Some(head) = get_or_head(req) else {
            return method_not_allowed("GET, HEAD");
        };
        let root = SafePath::from_uri_path("/").expect("/ is a valid path");
        let (status, text) = match self.files.tree().open(&root) {
            Ok(Node::Dir(_)) => (StatusCode::OK, "ok\n"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "repo root unavailable\n"),
        };
        text_response(status, "text/plain; charset=utf-8", text.into(), head)
    }

    /// The server's counters, then the status's series (which read the registry: blocking pool).
    async fn metrics<B>(&self, req: &Request<B>) -> Response<Body> {
        let Some(head) = get_or_head(req) else {
            return method_not_allowed("GET, HEAD");
        };
        let mut text = self.metrics.render();
        if let Some(s) = &self.status {
            let s = s.clone();
            if let Ok(more) = tokio::task::spawn_blocking(move || s.exposition()).await {
                text.push_str(&more);
            }
        }
        text_response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            text.into(),
            head,
        )
    }
}

fn text_response(
    status: StatusCode,
    media_type: &'static str,
    text: Bytes,
    head: bool,
) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    bytes_response(status, media_type, headers, text, head)
}
