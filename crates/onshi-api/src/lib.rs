//! The wire contract of onshi, written once: every request and response body, event, action and
//! error code of the device API (what the terminal's agent speaks), the institution API (what a
//! site and the billing screen read) and the operator API, with their OpenAPI schemas.
//!
//! The server, the agent, the demo, load mode and the tests all use these types; no event,
//! action or error code is spelled as a string anywhere else. The OpenAPI document is generated
//! from them and the server's router (`onshi-server`), never edited by hand.
//!
//! Must never: depend on anything of the workspace but `onshi-core`, do I/O, or validate a
//! field more loosely than its schema says (a client built from the document must be accepted).

pub mod admin;
pub mod device;
pub mod error;
pub mod institution;
pub mod int;
pub mod qualification;

pub use error::{ErrorBody, ErrorCode};

/// The path prefix of every JSON API.
pub const PREFIX: &str = "/api/v1";

/// `Authorization: Bearer …` credentials of the three APIs, as OpenAPI security schemes.
pub mod security {
    /// A device's own token (from enrolment).
    pub const DEVICE: &str = "device_token";
    /// An institution's access key.
    pub const INSTITUTION: &str = "institution_access_key";
    /// The operator token.
    pub const OPERATOR: &str = "operator_token";
}
