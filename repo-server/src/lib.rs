//! xenprov-repo: the HTTP server that installers and package managers fetch from on a xenprov Xen host.
//!
//! `cli` is the binary's commands. The folders are the layers, each using only those below it:
//! - `server/`: sockets, connections and their limits, the router, logs and metrics;
//! - `provision`: the guests' install endpoints (kickstart, preseed, events) behind their tokens;
//! - `fleet`: network installs of hosts (iPXE scripts, answers, events) from the host entries;
//! - `status`: the status page at `/ui/`, its JSON at `/api/`, and the guests' series of `/metrics`;
//! - `mounts`: the served namespace, the repo root at `/` and every mount at `/NAME/`;
//! - `content/`: repository content, its verifying caches, mirrors and their snapshots;
//! - `static_files/`: serving a `Tree` (a directory on disk, an ISO image), with path safety in `path`;
//! - `http/`: HTTP's rules for a response: bodies, ranges, validators, types, cache headers;
//! - `settings/`: the config file and the command line's flags over it.

#![forbid(unsafe_code)]

pub mod cli;
pub mod content;
pub mod fleet;
pub mod http;
pub mod mounts;
pub mod provision;
pub mod server;
pub mod settings;
pub mod static_files;
pub mod status;
