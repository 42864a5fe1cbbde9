//! One module per sub-command.

pub mod keygen;
pub mod schedule;
pub mod serve;
