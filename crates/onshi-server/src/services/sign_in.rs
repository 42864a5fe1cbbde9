//! One-time sign-in links for a site's staff: the announcement mail carries one, so a
//! receptionist opens the site page from the mail without typing the 43-character access key.
//!
//! A link's token is a 256-bit random secret; only its SHA-256 is stored, with the site, its
//! expiry and the site's access-key generation (the stored hash of its access key, or empty
//! without one). Using a link marks it used in the same statement that reads it
//! ([`onshi_store::Store::redeem_sign_in_link`]), so it signs in once, on any replica. A link
//! made before the access key was re-issued signs nobody in, and a session remembers the
//! generation it was opened under, so re-issuing the key ends every session of the site
//! ([`current_generation`]).

use jiff::{SignedDuration, Timestamp};
use onshi_core::institution::InstitutionCode;
use onshi_store::{InstitutionKey, NewSignInLink};

use crate::error::ApiResult;
use crate::secrets::{hash_secret, new_secret};
use crate::state::AppState;

/// How long a mailed link stays usable: the announcement goes out when the campaign starts,
/// and staff may open it any day of the distribution period.
pub const LINK_VALID: SignedDuration = SignedDuration::from_hours(14 * 24);

/// The site's access-key generation now: its access key's stored hash, or empty without one.
pub async fn current_generation(state: &AppState, code: InstitutionCode) -> ApiResult<String> {
    let hash = state
        .db(move |s| s.institution_key(code, InstitutionKey::Access))
        .await?;
    Ok(hash.unwrap_or_default())
}

/// A new link's token for `code`, valid until the returned instant. Only its hash is stored.
pub async fn create_link(
    state: &AppState,
    code: InstitutionCode,
) -> ApiResult<(String, Timestamp)> {
    let token = new_secret();
    let hash = hash_secret(&token);
    let generation = current_generation(state, code).await?;
    let now = state.now();
    let expires = now.checked_add(LINK_VALID).unwrap_or(Timestamp::MAX);
    state
        .db(move |s| {
            s.create_sign_in_link(&NewSignInLink {
                institution: code,
                token_hash: &hash,
                generation: &generation,
                created_at: now,
                expires_at: expires,
            })
        })
        .await?;
    Ok((token, expires))
}

/// Whether `token` looks like one of ours (43 URL-safe base64 characters): anything else is
/// refused before it is hashed or looked up.
pub fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Uses the link with `token`: the site it signs in, with the generation the session is bound
/// to, or `None` when the link is unknown, used, expired, or older than the site's access key.
pub async fn redeem(state: &AppState, token: &str) -> ApiResult<Option<(InstitutionCode, String)>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let hash = hash_secret(token);
    let now = state.now();
    let Some((code, generation)) = state.db(move |s| s.redeem_sign_in_link(&hash, now)).await?
    else {
        tracing::info!("sign-in link refused: unknown, used or expired");
        return Ok(None);
    };
    if current_generation(state, code).await? != generation {
        tracing::info!(institution = %code, "sign-in link refused: the access key was re-issued since");
        return Ok(None);
    }
    tracing::info!(institution = %code, "site signed in with a mailed link");
    Ok(Some((code, generation)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_43_url_safe_characters_are_a_token() {
        assert!(well_formed(&new_secret()));
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}/", "a".repeat(42))));
        assert!(!well_formed(&format!("{}%", "a".repeat(42))));
    }
}
