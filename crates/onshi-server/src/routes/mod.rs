//! One module per route group.

pub mod admin;
pub mod device;
pub mod institution;
pub mod qualification;
