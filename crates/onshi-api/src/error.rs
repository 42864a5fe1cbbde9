//! Every error leaves the server as `{"code": "...", "message": "..."}` with a stable `code`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The stable error codes. A client treats a code it does not know like any other failure of
/// that HTTP status; `message` is for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 409: this serial is enrolled already; the operator must revoke that device before it can
    /// be enrolled again.
    AlreadyEnrolled,
    /// 413: the body is over the route's limit (16 KiB for the device API and every route open
    /// without a credential, 64 MiB for the operator's JSON and CSV, 8 GiB for a package).
    BodyTooLarge,
    /// 409: the thing already exists, or a concurrent report changed the deployment first.
    Conflict,
    /// 503: the database cannot be reached now; nothing was stored, retry later.
    DatabaseUnavailable,
    /// 409: the site has as many terminals, or the terminal as many card readers, as it may.
    DeviceLimit,
    /// 400: an uploaded package has no bytes.
    EmptyPackage,
    /// 500: a server fault; details are only in the server log.
    Internal,
    /// 409: the campaign's status does not allow this control (e.g. pausing a draft).
    InvalidCampaignTransition,
    /// 400: a mock qualification card id is not 1–64 letters, digits or `-`.
    InvalidCardId,
    /// 400: the institution CSV is malformed or has no lines.
    InvalidCsv,
    /// 400: a report's `detail` is longer than 500 characters.
    InvalidDetail,
    /// 400: not a reception event.
    InvalidEvent,
    /// 400: `format` is not `json` or `csv`.
    InvalidFormat,
    /// 400: an id is not 1–64 characters of letters, digits, `.`, `_`, `-`.
    InvalidId,
    /// 400: an instant is not RFC 3339.
    InvalidInstant,
    /// 400: an institution record fails validation; the message names the item or CSV line.
    InvalidInstitution,
    /// 400: not a valid 医療機関コード (10 digits, known prefecture and 点数表, check digit).
    InvalidInstitutionCode,
    /// 400 (not JSON) or 422 (JSON of the wrong shape: unknown field, wrong type, bad value).
    InvalidJson,
    /// 400: a `prefecture` value is not 1–47 or a prefecture name.
    InvalidPrefecture,
    /// 400: a query parameter is unknown, malformed, or not one of the listed values.
    InvalidQuery,
    /// 400: a release has no components or lists a target twice.
    InvalidRelease,
    /// 400: the campaign TOML does not parse or validate, or the preset is unknown.
    InvalidSchedule,
    /// 400: `seq` is not positive.
    InvalidSeq,
    /// 400: a serial is not 1–64 characters of letters, digits, `-`, `_`, `.`, `:`.
    InvalidSerial,
    /// 400: a digest is not 64 lower-case hex digits.
    InvalidSha256,
    /// 409: the reception step does not follow the current screen.
    InvalidStep,
    /// 400: not `up-to-date` or `pending-restart`.
    InvalidTerminal,
    /// 400: a throttle value is out of range.
    InvalidThrottle,
    /// 409: the reported event is not a legal step from the deployment's current state.
    InvalidTransition,
    /// 400: not one of the five vendors.
    InvalidVendor,
    /// 403: the mock qualification service answers loopback clients only.
    LoopbackOnly,
    /// 405: the route exists but does not take this HTTP method.
    MethodNotAllowed,
    /// 400: a `running` report without `version`.
    MissingVersion,
    /// 429: the device holds no live download slot; check in to get one.
    NoDownloadSlot,
    /// 403: only a terminal may enrol card readers.
    NotATerminal,
    /// 404: no such route or resource, or nothing open for this device.
    NotFound,
    /// 403: distribution is closed now (outside the windows, or the campaign is not active).
    OutsideWindow,
    /// 416: the `Range` lies outside the artifact.
    RangeNotSatisfiable,
    /// 409: the server runs on real time; only a simulated clock can be set.
    RealClock,
    /// 408: the request's head or body did not arrive in time, or it took too long to answer.
    RequestTimeout,
    /// 401: missing, malformed or wrong bearer credential (or wrong enrollment key).
    Unauthorized,
    /// 409: a release component names a package that was never uploaded.
    UnknownArtifact,
    /// 400: signed metadata (a release manifest, a new root) does not verify against the
    /// trusted root: signatures below the role's threshold, expired, or not the next version.
    UntrustedMetadata,
    /// 415: a JSON body without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// 400: the package upload stream broke off.
    UploadInterrupted,
}

impl ErrorCode {
    /// The code as it appears on the wire (`invalid_seq`); a test keeps it equal to serde's.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            AlreadyEnrolled => "already_enrolled",
            BodyTooLarge => "body_too_large",
            Conflict => "conflict",
            DatabaseUnavailable => "database_unavailable",
            DeviceLimit => "device_limit",
            EmptyPackage => "empty_package",
            Internal => "internal",
            InvalidCampaignTransition => "invalid_campaign_transition",
            InvalidCardId => "invalid_card_id",
            InvalidCsv => "invalid_csv",
            InvalidDetail => "invalid_detail",
            InvalidEvent => "invalid_event",
            InvalidFormat => "invalid_format",
            InvalidId => "invalid_id",
            InvalidInstant => "invalid_instant",
            InvalidInstitution => "invalid_institution",
            InvalidInstitutionCode => "invalid_institution_code",
            InvalidJson => "invalid_json",
            InvalidPrefecture => "invalid_prefecture",
            InvalidQuery => "invalid_query",
            InvalidRelease => "invalid_release",
            InvalidSchedule => "invalid_schedule",
            InvalidSeq => "invalid_seq",
            InvalidSerial => "invalid_serial",
            InvalidSha256 => "invalid_sha256",
            InvalidStep => "invalid_step",
            InvalidTerminal => "invalid_terminal",
            InvalidThrottle => "invalid_throttle",
            InvalidTransition => "invalid_transition",
            InvalidVendor => "invalid_vendor",
            LoopbackOnly => "loopback_only",
            MethodNotAllowed => "method_not_allowed",
            MissingVersion => "missing_version",
            NoDownloadSlot => "no_download_slot",
            NotATerminal => "not_a_terminal",
            NotFound => "not_found",
            OutsideWindow => "outside_window",
            RangeNotSatisfiable => "range_not_satisfiable",
            RealClock => "real_clock",
            RequestTimeout => "request_timeout",
            Unauthorized => "unauthorized",
            UnknownArtifact => "unknown_artifact",
            UntrustedMetadata => "untrusted_metadata",
            UnsupportedMediaType => "unsupported_media_type",
            UploadInterrupted => "upload_interrupted",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For people: what went wrong and what to do; may change between versions.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_of_every_code_is_its_serde_name() {
        let schema = serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema())
            .unwrap_or_default();
        let names = schema["enum"].as_array().cloned().unwrap_or_default();
        assert_eq!(names.len(), 45, "{schema}");
        for name in names {
            let code: ErrorCode =
                serde_json::from_value(name.clone()).unwrap_or(ErrorCode::Internal);
            assert_eq!(code.as_str(), name.as_str().unwrap_or(""), "{name}");
        }
    }
}

/// The error answers an operation documents, once each: handlers list these in their
/// `#[utoipa::path(responses(...))]` instead of repeating status and body.
pub mod responses {
    use utoipa::IntoResponses;

    use super::ErrorBody;

    /// The errors of every operation with a JSON body.
    #[derive(IntoResponses)]
    pub enum JsonBody {
        /// The body is not JSON, or a value fails validation (see `code`).
        #[response(status = 400)]
        BadRequest(ErrorBody),
        /// The body is over the limit (64 MiB).
        #[response(status = 413)]
        TooLarge(ErrorBody),
        /// Not `Content-Type: application/json`.
        #[response(status = 415)]
        NotJson(ErrorBody),
        /// JSON of the wrong shape: an unknown field, a wrong type, a bad value.
        #[response(status = 422)]
        WrongShape(ErrorBody),
    }

    /// A parameter or a value fails validation (see `code`).
    #[derive(IntoResponses)]
    #[response(status = 400)]
    pub struct BadRequest(pub ErrorBody);

    /// The credential is missing, malformed or wrong.
    #[derive(IntoResponses)]
    #[response(status = 401)]
    pub struct Unauthorized(pub ErrorBody);

    /// Refused: outside the distribution window, not a terminal, not a loopback client.
    #[derive(IntoResponses)]
    #[response(status = 403)]
    pub struct Forbidden(pub ErrorBody);

    /// No such resource, or nothing open for this device.
    #[derive(IntoResponses)]
    #[response(status = 404)]
    pub struct NotFound(pub ErrorBody);

    /// The request conflicts with the current state (see `code`).
    #[derive(IntoResponses)]
    #[response(status = 409)]
    pub struct Conflict(pub ErrorBody);

    /// The body is over the limit.
    #[derive(IntoResponses)]
    #[response(status = 413)]
    pub struct TooLarge(pub ErrorBody);

    /// The `Range` lies outside the artifact.
    #[derive(IntoResponses)]
    #[response(status = 416)]
    pub struct RangeNotSatisfiable(pub ErrorBody);

    /// No download slot is held; check in to get one.
    #[derive(IntoResponses)]
    #[response(status = 429)]
    pub struct NoSlot(pub ErrorBody);

    /// The database cannot be reached now; nothing was stored, retry.
    #[derive(IntoResponses)]
    #[response(status = 503)]
    pub struct Unavailable(pub ErrorBody);
}
