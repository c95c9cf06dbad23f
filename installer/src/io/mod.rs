//! Small composable readers for the payload pipeline.

pub mod hash;
pub mod progress;
pub mod stage;
