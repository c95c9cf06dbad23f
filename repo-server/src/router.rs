//! Routes of the repo server: service endpoints by exact path, everything else from the static tree.
//!
//! Service paths shadow files of the same name at the top of the tree.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::body::Body;
use crate::cache::FileCache;
use crate::config::Config;
use crate::fs_tree::FsTree;
use crate::metrics::Metrics;
use crate::path::SafePath;
use crate::provision::{Provision, RequestBody};
use crate::responses::{bytes_response, get_or_head, method_not_allowed};
use crate::static_files::StaticFiles;
use crate::tree::Node;

pub struct Router {
    files: StaticFiles,
    metrics: Arc<Metrics>,
    provision: Option<Provision>,
}

impl Router {
    pub fn new(files: StaticFiles, metrics: Arc<Metrics>) -> Router {
        Router {
            files,
            metrics,
            provision: None,
        }
    }

    /// Adds the guest install routes (`/ks/`, `/preseed/`, `/events/`).
    pub fn with_provision(mut self, provision: Provision) -> Router {
        self.provision = Some(provision);
        self
    }

    /// The routes for `config`: its root directory on disk, with its file cache.
    pub fn from_config(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Router> {
        let tree = Arc::new(FsTree::open_root(&config.root)?);
        let cache = FileCache::new(config.cache_max_file, config.cache_capacity);
        let provision =
            Provision::from_guest_config(Path::new(xenprov_guest::config::DEFAULT_PATH))?;
        Ok(
            Router::new(StaticFiles::new(tree, cache, metrics.clone()), metrics)
                .with_provision(provision),
        )
    }

    pub async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        if let Some(p) = &self.provision
            && crate::provision::is_route(req.uri().path())
        {
            return p.handle(req).await;
        }
        match req.uri().path() {
            "/healthz" => self.health(&req),
            "/metrics" => self.metrics(&req),
            _ => self.files.serve(&req).await,
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

    fn metrics<B>(&self, req: &Request<B>) -> Response<Body> {
        let Some(head) = get_or_head(req) else {
            return method_not_allowed("GET, HEAD");
        };
        let text = self.metrics.render();
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
