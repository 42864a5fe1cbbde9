//! One module per sub-command.

pub mod demo;
pub mod fixture;
pub mod keys;
pub mod reception;
pub mod release;
pub mod schedule;
pub mod serve;
pub mod simulate;
