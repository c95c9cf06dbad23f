//! HTTP's rules for a response, apart from what is served: the body (files by sendfile, under the server's
//! read budget) and the `Source` it reads, byte ranges, conditional requests, content types, cache headers,
//! the plain responses, and what each request leaves behind (access log line, metrics).

pub mod access_log;
pub mod body;
pub mod cache_policy;
pub mod conditional;
pub mod content_type;
pub mod metrics;
pub mod range;
pub mod responses;
pub mod sendfile;
pub mod source;
pub mod written;
