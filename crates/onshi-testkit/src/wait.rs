//! Waiting for something observable, with a deadline: the one way tests wait. A test that asserts
//! an absence first waits for an event that comes after the moment in question (a later check-in,
//! a later planning round of the notices worker, every mail marked sent), never for a fixed time.

use std::time::{Duration, Instant};

/// How long a wait lasts before the test fails: far beyond anything a passing run needs.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until `cond` holds, checking every 20 ms; fails the test after [`DEADLINE`].
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the asynchronous `cond` holds (a request to the server, say), checking every
/// 50 ms; fails the test after [`DEADLINE`].
pub async fn wait_until(what: &str, cond: impl AsyncFnMut() -> bool) {
    wait_until_within(DEADLINE, what, cond).await;
}

/// [`wait_until`] with a deadline of `limit`.
pub async fn wait_until_within(limit: Duration, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
