//! Building blocks of responses shared by the routes.

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::http::body::Body;

/// `Some(is_head)` for GET and HEAD, the only methods of read-only routes.
pub fn get_or_head<B>(req: &Request<B>) -> Option<bool> {
    match *req.method() {
        Method::GET => Some(false),
        Method::HEAD => Some(true),
        _ => None,
    }
}

pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, false);
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A short plain-text error response.
pub fn error(status: StatusCode, head: bool) -> Response<Body> {
    let text = format!("{status}\n");
    bytes_response(
        status,
        "text/plain; charset=utf-8",
        HeaderMap::new(),
        Bytes::from(text),
        head,
    )
}

/// A response with an in-memory body and its exact length (also for HEAD, which gets no body).
pub fn bytes_response(
    status: StatusCode,
    media_type: &'static str,
    mut headers: HeaderMap,
    data: Bytes,
    head: bool,
) -> Response<Body> {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
    let body = if head {
        Body::empty()
    } else {
        Body::full(data)
    };
    response(status, headers, body)
}

pub fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Header values built here come from numbers, dates, our own ETags and URI paths: always valid.
pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
