//! xenprov-sys: what the installer, the image builder and the guest tool do to the machine they run
//! on, in one place: run its tools (`command`), mount and unmount (`mount`), and run tools inside
//! another root file system (`chroot`).

pub mod chroot;
pub mod command;
pub mod mount;

pub use chroot::Chroot;
pub use command::Cmd;
pub use mount::Mounts;
