//! GET and HEAD of files and directories of a `Tree`: validators and conditional requests, single and
//! multipart byte ranges, content types, caching policy and directory listings.
//!
//! Lookups (`Tree::open`) run inline: for a directory on disk they are an `openat2` and an `fstat`, cheaper
//! than a hand-off to the blocking pool. File contents are read on the blocking pool, or sent with sendfile.

pub mod cache;
pub mod fs_tree;
pub mod iso9660;
pub mod iso_tree;
pub mod listing;
pub mod path;
pub mod store_links;
pub mod tree;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::http::body::{Body, ConnectionBudget, Content, Part, ReadBudget};
use crate::http::conditional::{self, Outcome, Validators};
use crate::http::metrics::Metrics;
use crate::http::range::{self, ByteRange, RangeAnswer};
use crate::http::responses::{
    bytes_response, error, get_or_head, header_value, method_not_allowed, response,
};
use crate::http::sendfile::SendfileQueue;
use crate::http::{cache_policy, content_type};
use crate::static_files::cache::{FileCache, Key};
use crate::static_files::path::{PathError, SafePath};
use crate::static_files::tree::{Node, Source, Tree};

pub struct StaticFiles {
    tree: Arc<dyn Tree>,
    cache: FileCache,
    budget: ReadBudget,
    metrics: Arc<Metrics>,
}

impl StaticFiles {
    pub fn new(tree: Arc<dyn Tree>, cache: FileCache, metrics: Arc<Metrics>) -> StaticFiles {
        StaticFiles {
            tree,
            cache,
            budget: ReadBudget::new(&metrics),
            metrics,
        }
    }

    pub fn tree(&self) -> &Arc<dyn Tree> {
        &self.tree
    }

    /// Answers `req` from the tree. A `SendfileQueue` in the request's extensions lets large file bodies
    /// use sendfile on that connection.
    pub async fn serve<B>(&self, req: &Request<B>) -> Response<Body> {
        let Some(head) = get_or_head(req) else {
            return method_not_allowed("GET, HEAD");
        };
        let path = match SafePath::from_uri_path(req.uri().path()) {
            Ok(path) => path,
            Err(e) => {
                tracing::debug!(path = req.uri().path(), "refused: {e}");
                let status = match e {
                    PathError::Hidden => StatusCode::NOT_FOUND,
                    PathError::Malformed(_) => StatusCode::BAD_REQUEST,
                };
                return error(status, head);
            }
        };
        self.serve_path(req, &path, head).await
    }

    /// Answers a GET (or HEAD, when `head`) for `path`, decoded from `req`'s URI by the caller.
    pub async fn serve_path<B>(
        &self,
        req: &Request<B>,
        path: &SafePath,
        head: bool,
    ) -> Response<Body> {
        match self.tree.open(path) {
            Ok(Node::File(source)) => self.file(req, path, source, head).await,
            Ok(Node::Dir(_)) if !path.has_trailing_slash() => redirect_to_dir(req),
            Ok(Node::Dir(_)) => self.listing(req, path, head).await,
            Err(e) => io_error(&e, path, head),
        }
    }

    async fn file<B>(
        &self,
        req: &Request<B>,
        path: &SafePath,
        source: Arc<dyn Source>,
        head: bool,
    ) -> Response<Body> {
        let meta = *source.meta();
        let validators = Validators::for_file(meta.id, meta.len, meta.modified);
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, header_value(&validators.etag));
        let last_modified = httpdate::fmt_http_date(validators.last_modified);
        headers.insert(header::LAST_MODIFIED, header_value(&last_modified));
        if let Some(policy) = cache_policy::cache_control(path.as_path()) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
        }
        match conditional::evaluate(req.headers(), &validators) {
            Outcome::Proceed => {}
            Outcome::NotModified => {
                return response(StatusCode::NOT_MODIFIED, headers, Body::empty());
            }
            Outcome::PreconditionFailed => return error(StatusCode::PRECONDITION_FAILED, head),
        }
        let answer = match req.headers().get(header::RANGE) {
            Some(range) if conditional::range_allowed(req.headers(), &validators) => {
                range::parse(range.as_bytes(), meta.len)
            }
            _ => RangeAnswer::Full,
        };
        let media_type = content_type::content_type(path.as_path());
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let (status, parts) = match answer {
            RangeAnswer::Full => {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
                let whole = (meta.len > 0).then_some(Part::Range {
                    offset: 0,
                    len: meta.len,
                });
                (StatusCode::OK, whole.into_iter().collect())
            }
            RangeAnswer::Unsatisfiable => {
                headers.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{}", meta.len)),
                );
                return response(StatusCode::RANGE_NOT_SATISFIABLE, headers, Body::empty());
            }
            RangeAnswer::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
                headers.insert(
                    header::CONTENT_RANGE,
                    header_value(&content_range(r, meta.len)),
                );
                let part = Part::Range {
                    offset: r.start,
                    len: r.size(),
                };
                (StatusCode::PARTIAL_CONTENT, vec![part])
            }
            RangeAnswer::Partial(ranges) => {
                let boundary = boundary();
                let multipart = format!("multipart/byteranges; boundary={boundary}");
                headers.insert(header::CONTENT_TYPE, header_value(&multipart));
                (
                    StatusCode::PARTIAL_CONTENT,
                    multipart_parts(&ranges, meta.len, media_type, boundary),
                )
            }
        };
        let length: u64 = parts.iter().map(Part::size).sum();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if head || parts.is_empty() {
            return response(status, headers, Body::empty());
        }
        let content = match self.content(source, req).await {
            Ok(content) => content,
            Err(e) => return io_error(&e, path, head),
        };
        response(status, headers, Body::from_parts(parts, content))
    }

    /// Small files come from (or go into) the cache; larger ones are read or sent as the body is written.
    async fn content<B>(&self, source: Arc<dyn Source>, req: &Request<B>) -> io::Result<Content> {
        let meta = *source.meta();
        if !self.cache.accepts(&meta) {
            let sendfile = req.extensions().get::<SendfileQueue>().cloned();
            let budget = self
                .budget
                .for_connection(req.extensions().get::<ConnectionBudget>());
            return Ok(Content::Source {
                source,
                sendfile,
                budget,
            });
        }
        let key = Key::of(&meta);
        if let Some(data) = self.cache.get(&key) {
            self.metrics.cache_lookup(true);
            return Ok(Content::Memory(data));
        }
        self.metrics.cache_lookup(false);
        let data = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; meta.len as usize];
            source.read_exact_at(&mut buf, 0).map(|()| Bytes::from(buf))
        })
        .await
        .map_err(io::Error::other)??;
        self.cache.insert(key, data.clone());
        Ok(Content::Memory(data))
    }

    async fn listing<B>(&self, req: &Request<B>, path: &SafePath, head: bool) -> Response<Body> {
        let tree = self.tree.clone();
        let listed = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || tree.list(&path)).await
        };
        let mut entries = match listed.map_err(io::Error::other).and_then(|r| r) {
            Ok(entries) => entries,
            Err(e) => return io_error(&e, path, head),
        };
        listing::sort(&mut entries);
        let wants_json = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let (text, media_type) = if wants_json {
            (listing::json(&entries), "application/json")
        } else {
            let title = format!("/{}", path.as_path().to_string_lossy());
            let title = if path.is_root() { title } else { title + "/" };
            (listing::html(&title, &entries), "text/html; charset=utf-8")
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_policy::REVALIDATE),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        bytes_response(StatusCode::OK, media_type, headers, Bytes::from(text), head)
    }
}

/// Part headers and ranges of a `multipart/byteranges` body (RFC 9110 §14.6).
fn multipart_parts(ranges: &[ByteRange], len: u64, media_type: &str, boundary: &str) -> Vec<Part> {
    let mut parts = Vec::with_capacity(2 * ranges.len() + 1);
    for r in ranges {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: {media_type}\r\nContent-Range: {}\r\n\r\n",
            content_range(*r, len)
        );
        parts.push(Part::Bytes(Bytes::from(head)));
        parts.push(Part::Range {
            offset: r.start,
            len: r.size(),
        });
    }
    parts.push(Part::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    parts
}

fn content_range(r: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{len}", r.start, r.end)
}

/// A random multipart boundary per process; 64 random bits make a collision with file data negligible.
fn boundary() -> &'static str {
    static BOUNDARY: OnceLock<String> = OnceLock::new();
    BOUNDARY.get_or_init(|| format!("xenprov-{:016x}", RandomState::new().hash_one(0u8)))
}

fn redirect_to_dir<B>(req: &Request<B>) -> Response<Body> {
    let location = path::dir_location(req.uri().path(), req.uri().query());
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, header_value(&location));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response(StatusCode::MOVED_PERMANENTLY, headers, Body::empty())
}

fn io_error(e: &io::Error, path: &SafePath, head: bool) -> Response<Body> {
    match e.kind() {
        io::ErrorKind::NotFound => error(StatusCode::NOT_FOUND, head),
        io::ErrorKind::PermissionDenied => error(StatusCode::FORBIDDEN, head),
        _ => {
            tracing::error!("serving /{}: {e}", path.as_path().display());
            error(StatusCode::INTERNAL_SERVER_ERROR, head)
        }
    }
}
