//! Repository content: verifying pull-through caches of upstream repositories (`pull_through`, fetching
//! through `upstream` once per file with `single_flight`), byte-exact mirrors (`mirror`) published as
//! snapshots (`publish`), the content-addressed `object_store` both keep their files in, the checks of
//! the signed chains (`verify`), and what a tree or ISO holds (`detect`, `inventory`).

pub mod detect;
pub mod inventory;
pub mod mirror;
pub mod object_store;
pub mod progress;
pub mod publish;
pub mod pull_through;
pub mod single_flight;
pub mod upstream;
pub mod verify;
