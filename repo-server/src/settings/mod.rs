//! The server's settings: the config file it reads (`config`), with the command line's flags over it, and the
//! tables in it (`specs`).

pub mod config;
pub mod specs;
