//! xenprov-guest: guest definitions become installed, running Xen guests. The registry is also
//! what the repo server uses to serve kickstarts and preseeds and to record install events.

pub mod backup;
pub mod debootstrap;
pub mod disk;
pub mod installer;
pub mod lifecycle;
pub mod machine;
pub mod network;
pub mod ops;
pub mod storage;
pub mod top;
