//! xenprov-sys: what the installer, the image builder, the guest tool and the repo server do to the
//! machine they run on, in one place: run its tools (`command`), mount and unmount (`mount`), run
//! tools inside another root file system (`chroot`) and read Xen's counters (`xen`).

pub mod chroot;
pub mod command;
pub mod mount;
pub mod xen;

pub use chroot::Chroot;
pub use command::Cmd;
pub use mount::Mounts;
