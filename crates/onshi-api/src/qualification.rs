//! The mock qualification service (`POST /api/v1/qualification`) the reception emulator asks:
//! obviously fake patients, and the two real-world refusals.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The card id that stands for "no qualification" (資格なし).
pub const CARD_NO_QUALIFICATION: &str = "test-no-qualification";
/// The card id that stands for an expired electronic certificate.
pub const CARD_EXPIRED_CERTIFICATE: &str = "test-expired-certificate";

/// A card to look up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[schema(pattern = "^[A-Za-z0-9-]{1,64}$")]
    pub card_id: String,
}

/// A synthetic insured person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Patient {
    pub name: String,
    pub name_kana: String,
    pub birth_date: String,
    /// 保険者番号: 8 digits with a check digit.
    pub insurer_number: String,
    /// 記号
    pub symbol: String,
    /// 番号
    pub number: String,
    /// 枝番
    pub branch: String,
}

/// The answer for a card.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum QueryResponse {
    Confirmed { patient: Patient },
    NoQualification { message: String },
    CertificateExpired { message: String },
}
