//! What the in-process route tests share: one request straight to the router.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use xenprov_repo::server::router::Router;

/// The address clients name this server by in the tests (as QEMU's guests do the host).
pub const HOST: &str = "10.0.2.2:8080";

/// Sends one request with `body` to `router`; its status and body as text.
pub async fn send(router: &Router, method: Method, path: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = router.handle(req).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
