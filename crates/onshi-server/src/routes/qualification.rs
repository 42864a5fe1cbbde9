//! A mock of the central qualification service (`/api/v1/qualification`), so the reception
//! emulator runs end to end without any real system. Every patient is synthetic and obviously
//! fake (「試験」 names, example insurers); by default only loopback clients may ask.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use onshi_api::ErrorCode;
use onshi_api::qualification::{Patient, QueryRequest, QueryResponse};
use onshi_core::reception::QueryOutcome;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::json::ApiJson;
use crate::services::qualification;
use crate::state::AppState;

/// A client the mock service answers: on loopback (behind a trusted proxy, the client the proxy
/// names) unless `--qualification-public`. Extracted from the request's head, so anyone else is
/// refused before a byte of the body is read.
pub struct MayAsk;

impl FromRequestParts<AppState> for MayAsk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        if state.qualification_public || peer.is_some_and(|ip| ip.is_loopback()) {
            Ok(MayAsk)
        } else {
            Err(ApiError::forbidden(
                ErrorCode::LoopbackOnly,
                "the mock qualification service answers only loopback clients",
            ))
        }
    }
}

/// The answer for a card: a fake patient, or one of the two refusals.
pub fn lookup(card_id: &str) -> (QueryOutcome, QueryResponse) {
    let outcome = qualification::outcome(card_id);
    let response = match outcome {
        QueryOutcome::NoQualification => QueryResponse::NoQualification {
            message: "資格情報が存在しません。（資格なし）".to_owned(),
        },
        QueryOutcome::CertificateExpired => QueryResponse::CertificateExpired {
            message: "電子証明書の有効期限が切れています。".to_owned(),
        },
        QueryOutcome::Confirmed => QueryResponse::Confirmed {
            patient: patient(card_id),
        },
    };
    (outcome, response)
}

const GIVEN: [(&str, &str); 6] = [
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("桜", "サクラ"),
    ("健", "ケン"),
    ("美咲", "ミサキ"),
];

/// A deterministic fake patient for a card id.
fn patient(card_id: &str) -> Patient {
    let h = Sha256::digest(card_id.as_bytes());
    let pick = |i: usize, m: u32| u32::from(h[i]) % m;
    let (given, kana) = GIVEN[pick(0, GIVEN.len() as u32) as usize];
    let first7 = format!("06{:02}{:03}", 1 + pick(1, 47), pick(2, 250) * 4 % 1000);
    Patient {
        name: format!("試験 {given}"),
        name_kana: format!("シケン {kana}"),
        birth_date: format!(
            "{}-{:02}-{:02}",
            1940 + pick(3, 70),
            1 + pick(4, 12),
            1 + pick(5, 28)
        ),
        insurer_number: format!("{first7}{}", insurer_check_digit(&first7)),
        symbol: format!("テスト{}", pick(6, 90) + 10),
        number: format!("{}", 1000 + u32::from(h[7]) * 37 % 9000),
        branch: format!("{:02}", pick(8, 4)),
    }
}

/// The check digit of a 保険者番号 over its first 7 digits: from the right, weights 2,1,2,…,
/// digits of each product summed; (10 − sum mod 10) mod 10.
pub fn insurer_check_digit(first7: &str) -> u32 {
    let sum: u32 = first7
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let p = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    (10 - sum % 10) % 10
}

/// `POST /api/v1/qualification`: the mock central service (loopback clients only unless the
/// server was started with it public).
#[utoipa::path(
    post,
    path = "/api/v1/qualification",
    tag = "qualification",
    request_body = onshi_api::qualification::QueryRequest,
    responses(
        (status = 200, description = "the mock answer", body = onshi_api::qualification::QueryResponse),
        onshi_api::error::responses::JsonBody,
        onshi_api::error::responses::Forbidden,
    ),
)]
pub async fn query(
    _: MayAsk,
    ApiJson(req): ApiJson<QueryRequest>,
) -> ApiResult<Json<QueryResponse>> {
    let ok = (1..=64).contains(&req.card_id.len())
        && req
            .card_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidCardId,
            "card_id must be 1–64 letters, digits or '-'",
        ));
    }
    Ok(Json(lookup(&req.card_id).1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_patients_are_deterministic_and_carry_valid_insurer_numbers() {
        let a = patient("card-1");
        assert_eq!(a, patient("card-1"));
        assert!(a.name.starts_with("試験 "));
        assert_eq!(a.insurer_number.len(), 8);
        let check = insurer_check_digit(&a.insurer_number[..7]);
        assert_eq!(a.insurer_number[7..], check.to_string());
    }

    #[test]
    fn the_two_refusal_cards_are_refused() {
        use crate::services::qualification::{CARD_EXPIRED_CERTIFICATE, CARD_NO_QUALIFICATION};
        assert_eq!(
            lookup(CARD_NO_QUALIFICATION).0,
            QueryOutcome::NoQualification
        );
        assert_eq!(
            lookup(CARD_EXPIRED_CERTIFICATE).0,
            QueryOutcome::CertificateExpired
        );
        assert_eq!(lookup("anything-else").0, QueryOutcome::Confirmed);
    }
}
