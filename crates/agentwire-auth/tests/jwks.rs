//! `auth.jwks_url`: tokens signed with RS256, ES256 and EdDSA keys served as a JWKS by the test
//! (axum on a loopback port), key rotation, and the refresh rate limit on unknown `kid`s.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentwire_auth::{AuthRequest, Authenticate, Authenticator, MIN_REFRESH_INTERVAL};
use agentwire_startup::{AgentwireConfig, AuthMode};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.test/";
const AUDIENCE: &str = "agentwire";

struct Signer {
    kid: &'static str,
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Signer {
    fn new(kid: &'static str, algorithm: Algorithm) -> Self {
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(include_bytes!("keys/rsa.pem")),
            Algorithm::ES256 => EncodingKey::from_ec_pem(include_bytes!("keys/ec.pem")),
            _ if kid.ends_with('2') => EncodingKey::from_ed_pem(include_bytes!("keys/ed2.pem")),
            _ => EncodingKey::from_ed_pem(include_bytes!("keys/ed1.pem")),
        }
        .unwrap();
        Self {
            kid,
            algorithm,
            key,
        }
    }

    /// The public key as a JWK (from `keys/*.jwk.json`, derived with openssl).
    fn jwk(&self) -> Jwk {
        let public = match self.algorithm {
            Algorithm::RS256 => include_str!("keys/rsa.jwk.json"),
            Algorithm::ES256 => include_str!("keys/ec.jwk.json"),
            _ if self.kid.ends_with('2') => include_str!("keys/ed2.jwk.json"),
            _ => include_str!("keys/ed1.jwk.json"),
        };
        let mut jwk: Value = serde_json::from_str(public).unwrap();
        jwk["kid"] = json!(self.kid);
        serde_json::from_value(jwk).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn claims(sub: &str) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"sub": sub, "exp": now + 600, "iss": ISSUER, "aud": AUDIENCE})
}

/// The served keys and the count of fetches.
type ProviderState = (Arc<Mutex<Vec<Jwk>>>, Arc<AtomicUsize>);

/// A JWKS endpoint on a loopback port serving whatever `keys` holds, counting its fetches.
struct Provider {
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

async fn provider(keys: Vec<Jwk>) -> Provider {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let state = (Arc::clone(&keys), Arc::clone(&fetches));
    let app = axum::Router::new()
        .route(
            "/.well-known/jwks.json",
            get(|State((keys, fetches)): State<ProviderState>| async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let set = JwkSet {
                    keys: keys.lock().unwrap().clone(),
                };
                Json(set)
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Provider { keys, fetches, url }
}

fn authenticator(url: &str) -> Authenticator {
    let mut config = AgentwireConfig::default();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwks_url = Some(url.to_owned());
    config.auth.issuer = Some(ISSUER.to_owned());
    config.auth.audience = Some(AUDIENCE.to_owned());
    config.validate().unwrap();
    Authenticator::from_config(&config)
}

fn check(auth: &Authenticator, token: &str) -> Result<String, String> {
    let headers = http::HeaderMap::new();
    let request = AuthRequest {
        headers: &headers,
        token: Some(token),
        user: None,
    };
    auth.authenticate(&request)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

/// Retries `token` until it verifies (the background refresh loaded its key) or `within` passes.
async fn verified_within(auth: &Authenticator, token: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        match check(auth, token) {
            Ok(user) => return user,
            Err(e) if Instant::now() < deadline => {
                assert!(e.contains("retry"), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not verified within {within:?}: {e}"),
        }
    }
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_verify_against_the_served_keys() {
    let signers = [
        Signer::new("rsa-1", Algorithm::RS256),
        Signer::new("ec-1", Algorithm::ES256),
        Signer::new("ed-1", Algorithm::EdDSA),
    ];
    let provider = provider(signers.iter().map(Signer::jwk).collect()).await;
    let auth = authenticator(&provider.url);
    assert_eq!(auth.jwks().unwrap().refresh().await.unwrap(), 3);
    for signer in &signers {
        assert_eq!(check(&auth, &signer.sign(&claims("ada"))).unwrap(), "ada");
    }
    // The key of one kid cannot verify a token signed by another key under that kid.
    let ec = &signers[1];
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(&header, &claims("ada"), &ec.key).unwrap();
    assert!(check(&auth, &forged).is_err());
    // Issuer and audience are checked.
    let mut wrong_issuer = claims("ada");
    wrong_issuer["iss"] = json!("https://evil.example.test/");
    assert!(check(&auth, &signers[2].sign(&wrong_issuer)).is_err());
    let mut wrong_audience = claims("ada");
    wrong_audience["aud"] = json!("someone-else");
    assert!(check(&auth, &signers[2].sign(&wrong_audience)).is_err());
    // An HS256 token is refused: this server has no shared secret.
    let hs = jsonwebtoken::encode(
        &Header::default(),
        &claims("ada"),
        &EncodingKey::from_secret(b"a-secret-of-at-least-32-bytes-long!"),
    )
    .unwrap();
    assert!(check(&auth, &hs).is_err());
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_its_first_token_and_the_old_one_stops_verifying() {
    let (old, new) = (
        Signer::new("ed-1", Algorithm::EdDSA),
        Signer::new("ed-2", Algorithm::EdDSA),
    );
    let provider = provider(vec![old.jwk()]).await;
    let auth = authenticator(&provider.url);
    let old_token = old.sign(&claims("ada"));
    // The background task loads the keys on its own.
    assert_eq!(
        verified_within(&auth, &old_token, Duration::from_secs(5)).await,
        "ada"
    );
    let started = Instant::now();

    // The provider rotates: only the new key is published.
    *provider.keys.lock().unwrap() = vec![new.jwk()];
    let new_token = new.sign(&claims("bob"));
    // A flood of unknown kids does not turn into a flood of fetches.
    for i in 0..200 {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("unknown-{i}"));
        let token = jsonwebtoken::encode(&header, &claims("eve"), &new.key).unwrap();
        assert!(check(&auth, &token).is_err());
    }
    assert_eq!(
        verified_within(
            &auth,
            &new_token,
            MIN_REFRESH_INTERVAL + Duration::from_secs(5)
        )
        .await,
        "bob"
    );
    let fetches = provider.fetches.load(Ordering::SeqCst);
    assert!(
        fetches <= 2 + (started.elapsed().as_secs() / MIN_REFRESH_INTERVAL.as_secs()) as usize,
        "{fetches} fetches in {:?}",
        started.elapsed()
    );
    let err = check(&auth, &old_token).unwrap_err();
    assert!(
        err.contains("retry"),
        "the rotated-out key no longer verifies: {err}"
    );
}
