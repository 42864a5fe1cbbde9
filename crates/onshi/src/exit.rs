//! Exit codes: bad input from the user exits 2 (like a usage error), anything else 1.

use std::fmt;

/// Marks an error as the user's input being wrong (a malformed file, instant or argument):
/// the command exits with status 2 and the message names the problem.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Turns any displayable error into a [`BadInput`] error with context.
pub fn bad_input(context: impl fmt::Display, err: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(BadInput(format!("{context}: {err}")))
}
