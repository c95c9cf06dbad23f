//! xenprov-core: the model and the pure logic shared by the installer, the repo server and the
//! guest tool. Nothing here touches a disk or the network; templates are the only thing read.

pub mod answer;
pub mod gpt;
pub mod guest;
pub mod inventory;
pub mod net;
pub mod password;
pub mod payload;
pub mod plan;
pub mod reader;
pub mod render;
pub mod size;
