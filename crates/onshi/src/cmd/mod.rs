//! One module per sub-command.

pub mod demo;
pub mod fixture;
pub mod keygen;
pub mod reception;
pub mod schedule;
pub mod serve;
pub mod simulate;
