//! The rules of the notice in code: identifiers, vendors, versions, the campaign schedule,
//! Japanese public holidays, call-centre hours, the deployment state machine and what a site should do now.
//!
//! No I/O and no clock reads live here: every function that depends on "now" takes the instant
//! as an argument, so the server, the agent, the simulator and the tests share one set of rules.

pub mod appointment;
pub mod auto_restart;
pub mod callcentre;
pub mod deployment;
pub mod guidance;
pub mod holidays;
pub mod institution;
pub mod jst;
pub mod lang;
pub mod notice;
pub mod offer;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod reception;
pub mod release;
pub mod schedule;
pub mod selector;
pub mod silence;
pub mod trust;
pub mod vendor;
pub mod version;
pub mod waves;
