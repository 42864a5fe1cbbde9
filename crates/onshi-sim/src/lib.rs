//! onshi-sim: the fleet simulator behind `onshi simulate`. Before a campaign starts it answers
//! the operator's questions: with this schedule and this throttle, how many sites are reached by
//! the last night, how much egress the distribution needs at peak, how many patients meet the
//! error because a terminal was not restarted, and when the call centre is busiest.
//!
//! It drives the rules of `onshi-core` (schedule, offer, deployment state machine, reception,
//! call-centre hours) and carries no copy of them. Layout: [`scenario`] reads and validates the
//! TOML, [`fleet`] draws the sites and devices, [`des`] is the discrete-event simulation,
//! [`report`] its time series and summary, [`chart`] the SVG and PNG charts, [`compare`] the
//! what-if of two scenarios. [`fleet::sites`] hands the same model's sites out one by one to
//! what needs sites without a simulation: `onshi demo`, its load mode and the benchmark fixture.

pub mod calendar;
pub mod chart;
pub mod compare;
pub mod des;
pub mod fleet;
pub mod report;
pub mod scenario;

pub use des::{Outcome, Progress, run};
pub use scenario::{Scenario, ScenarioError};
