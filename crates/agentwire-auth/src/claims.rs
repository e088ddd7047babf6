//! Which JWT claims agentwire checks beyond the signature: `exp` (required, and no further away
//! than `auth.max_token_lifetime`), `nbf` when present, `iss` when `auth.issuer` is set, `aud`
//! when `auth.audience` is set (and ignored otherwise, so a provider's `aud` does not refuse
//! the token).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentwire_startup::AuthConfig;
use jsonwebtoken::{Algorithm, Validation};

use crate::AuthError;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub(crate) const LEEWAY_SECS: u64 = 5;

/// The [`Validation`] for tokens signed with `algorithm` under `auth`.
pub(crate) fn validation(auth: &AuthConfig, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    let mut required = vec!["exp", "sub"];
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    if let Some(issuer) = &auth.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &auth.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Refuses a token whose `exp` lies further ahead of `now` than `max_lifetime` allows: a token
/// that never expires (`exp` = u64::MAX) cannot be revoked by waiting.
pub(crate) fn check_lifetime(exp: u64, now: u64, max_lifetime: Duration) -> Result<(), AuthError> {
    let limit = now
        .saturating_add(max_lifetime.as_secs())
        .saturating_add(LEEWAY_SECS);
    if exp > limit {
        return Err(AuthError::InvalidToken(format!(
            "the token stays valid for longer than this server accepts (at most {}); ask for a shorter-lived token",
            humanize(max_lifetime)
        )));
    }
    Ok(())
}

/// When a token whose `exp` is `exp` stops being accepted: `exp` plus the leeway (`None` past
/// the end of `SystemTime`, which `check_lifetime` already refuses).
pub(crate) fn accepted_until(exp: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(exp.checked_add(LEEWAY_SECS)?))
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use agentwire_startup::{AgentwireConfig, AuthMode};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use crate::{AuthError, AuthRequest, Authenticate, Authenticator};

    const SECRET: &str = "a-secret-of-at-least-32-bytes-long!";

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn authenticator(issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        let mut config = AgentwireConfig::default();
        config.auth.mode = AuthMode::Jwt;
        config.auth.jwt_secret = Some(SECRET.into());
        config.auth.issuer = issuer.map(str::to_owned);
        config.auth.audience = audience.map(str::to_owned);
        Authenticator::from_config(&config)
    }

    fn sign(claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn check(auth: &Authenticator, claims: Value) -> Result<String, AuthError> {
        let token = sign(claims);
        let headers = http::HeaderMap::new();
        let request = AuthRequest {
            headers: &headers,
            token: Some(&token),
            user: None,
        };
        auth.authenticate(&request).map(|u| u.to_string())
    }

    #[test]
    fn nbf_in_the_future_is_refused_and_in_the_past_accepted() {
        let auth = authenticator(None, None);
        let exp = now() + 600;
        assert!(check(&auth, json!({"sub": "ada", "exp": exp, "nbf": now() + 300})).is_err());
        assert_eq!(
            check(&auth, json!({"sub": "ada", "exp": exp, "nbf": now() - 10})).unwrap(),
            "ada"
        );
    }

    #[test]
    fn a_token_valid_for_longer_than_the_maximum_lifetime_is_refused() {
        let auth = authenticator(None, None);
        let err = check(&auth, json!({"sub": "ada", "exp": u64::MAX})).unwrap_err();
        assert!(
            err.to_string().contains("longer than this server accepts"),
            "{err}"
        );
        let a_year = now() + 365 * 24 * 3600;
        assert!(check(&auth, json!({"sub": "ada", "exp": a_year})).is_err());
        let an_hour = now() + 3600;
        assert!(check(&auth, json!({"sub": "ada", "exp": an_hour})).is_ok());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_set() {
        let exp = now() + 600;
        let auth = authenticator(Some("https://id.example.com/"), Some("agentwire"));
        let good =
            json!({"sub": "ada", "exp": exp, "iss": "https://id.example.com/", "aud": "agentwire"});
        assert_eq!(check(&auth, good).unwrap(), "ada");
        for bad in [
            json!({"sub": "ada", "exp": exp, "iss": "https://evil.example.com/", "aud": "agentwire"}),
            json!({"sub": "ada", "exp": exp, "iss": "https://id.example.com/", "aud": "other"}),
            json!({"sub": "ada", "exp": exp, "aud": "agentwire"}),
            json!({"sub": "ada", "exp": exp, "iss": "https://id.example.com/"}),
        ] {
            assert!(check(&auth, bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_identity_expires_at_exp_plus_the_leeway_and_dev_users_never() {
        let auth = authenticator(None, None);
        let exp = now() + 600;
        let token = sign(json!({"sub": "ada", "exp": exp}));
        let headers = http::HeaderMap::new();
        let request = AuthRequest {
            headers: &headers,
            token: Some(&token),
            user: None,
        };
        let identity = auth.identify(&request).unwrap();
        assert_eq!(identity.user.as_str(), "ada");
        let until = UNIX_EPOCH + std::time::Duration::from_secs(exp + super::LEEWAY_SECS);
        assert_eq!(identity.expires_at, Some(until));
        assert_eq!(auth.refresh(&token).unwrap(), identity);
        assert!(matches!(
            auth.refresh("not-a-jwt"),
            Err(AuthError::InvalidToken(_))
        ));

        let dev = Authenticator::from_config(&AgentwireConfig::default());
        let request = AuthRequest {
            headers: &headers,
            token: None,
            user: Some("ada"),
        };
        assert_eq!(dev.identify(&request).unwrap().expires_at, None);
        let refused = dev.refresh(&token).unwrap_err();
        assert!(matches!(refused, AuthError::CannotRefresh(_)), "{refused}");
    }

    #[test]
    fn without_a_configured_audience_a_token_carrying_aud_is_accepted() {
        let auth = authenticator(None, None);
        let claims = json!({"sub": "ada", "exp": now() + 600, "aud": ["x", "y"], "iss": "any"});
        assert_eq!(check(&auth, claims).unwrap(), "ada");
    }
}
