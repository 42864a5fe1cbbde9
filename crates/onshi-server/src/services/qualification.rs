//! The mock central qualification service's verdict on a card: the two test cards that stand
//! for the real-world refusals, and a confirmation for every other card. The mock's API
//! (`routes::qualification`) and the reception emulator both ask here.

use onshi_core::reception::QueryOutcome;

/// Card ids that stand for the real-world refusals.
pub use onshi_api::qualification::{CARD_EXPIRED_CERTIFICATE, CARD_NO_QUALIFICATION};

/// What the central service answers for a card.
pub fn outcome(card_id: &str) -> QueryOutcome {
    match card_id {
        CARD_NO_QUALIFICATION => QueryOutcome::NoQualification,
        CARD_EXPIRED_CERTIFICATE => QueryOutcome::CertificateExpired,
        _ => QueryOutcome::Confirmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_refusal_cards_are_refused_and_every_other_card_confirmed() {
        assert_eq!(
            outcome(CARD_NO_QUALIFICATION),
            QueryOutcome::NoQualification
        );
        assert_eq!(
            outcome(CARD_EXPIRED_CERTIFICATE),
            QueryOutcome::CertificateExpired
        );
        assert_eq!(outcome("test-card-0001"), QueryOutcome::Confirmed);
    }
}
