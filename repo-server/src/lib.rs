//! xenprov-repo: the HTTP server that installers and package managers fetch from on a xenprov Xen host.
//!
//! `server` accepts connections and enforces limits, `router` picks a route, `static_files` serves a
//! `tree::Tree` (a directory on disk: `fs_tree`), with path safety in `path`. `mounts` puts ISO images
//! (`iso_tree`), verifying caches of upstream repositories (`pull_through`) and mirror snapshots (`mirror`,
//! `publish`) beside it, each at `/NAME/`.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod body;
pub mod cache;
pub mod cache_policy;
pub mod cli;
pub mod conditional;
pub mod config;
pub mod conn;
pub mod content_type;
pub mod detect;
pub mod fs_tree;
pub mod inventory;
pub mod iso9660;
pub mod iso_tree;
pub mod listing;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod mounts;
pub mod object_store;
pub mod path;
pub mod progress;
pub mod provision;
pub mod publish;
pub mod pull_through;
pub mod range;
pub mod responses;
pub mod router;
pub mod sendfile;
pub mod server;
pub mod single_flight;
pub mod static_files;
pub mod tree;
pub mod upstream;
pub mod verify;
