//! The server's Ed25519 key: it signs webhook requests (PROTOCOL.md §7.1), is published as a
//! JWK Set (§6.5), and signs the callback and claim tokens (§7.3), which are therefore
//! verifiable on every node that shares the key without storing them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Domain separation: a token signature can never pass as a webhook signature (whose message
/// starts with a decimal timestamp) nor the reverse.
const TOKEN_DOMAIN: &[u8] = b"ds-wake-token.";

/// `n` random bytes, base64url.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    B64.encode(bytes)
}

/// 32 random bytes: a new signing key's seed.
pub(crate) fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the OS random source is available");
    seed
}

/// What a wake token grants: acks for one wake of one subscription of one owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenClaims {
    /// The owner (`Owner.0`).
    pub o: String,
    /// The subscription id.
    pub s: String,
    /// The generation.
    pub g: u64,
    /// The wake id.
    pub w: String,
}

/// The signing key with its public JWK.
pub(crate) struct Signer {
    key: SigningKey,
    kid: String,
    x: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// The key of `seed`; its `kid` is `ds_` and the RFC 7638 thumbprint of the public key.
    pub(crate) fn new(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let x = B64.encode(key.verifying_key().to_bytes());
        let thumbprint = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        Self {
            key,
            kid: format!("ds_{}", B64.encode(thumbprint)),
            x,
        }
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK Set (§6.5).
    pub(crate) fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "kid": self.kid, "use": "sig", "alg": "EdDSA",
            "x": self.x,
        }]})
    }

    /// `Webhook-Signature` for `body` at `unix_secs`: `t=<ts>,kid=<kid>,ed25519=<sig>` over
    /// `<ts>.<body>`.
    pub(crate) fn sign_webhook(&self, body: &[u8], unix_secs: u64) -> String {
        let mut message = format!("{unix_secs}.").into_bytes();
        message.extend_from_slice(body);
        let signature = self.key.sign(&message);
        format!(
            "t={unix_secs},kid={},ed25519={}",
            self.kid,
            B64.encode(signature.to_bytes())
        )
    }

    /// A token carrying `claims`: `<base64url(json)>.<base64url(signature)>`.
    pub(crate) fn token(&self, claims: &TokenClaims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signature = self.key.sign(&[TOKEN_DOMAIN, payload.as_bytes()].concat());
        format!("{payload}.{}", B64.encode(signature.to_bytes()))
    }

    /// The claims of a token this key signed; `None` for anything else.
    pub(crate) fn verify(&self, token: &str) -> Option<TokenClaims> {
        let (payload, signature) = token.split_once('.')?;
        let signature: [u8; 64] = B64.decode(signature).ok()?.try_into().ok()?;
        let verifying: VerifyingKey = self.key.verifying_key();
        verifying
            .verify(
                &[TOKEN_DOMAIN, payload.as_bytes()].concat(),
                &Signature::from_bytes(&signature),
            )
            .ok()?;
        serde_json::from_slice(&B64.decode(payload).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_when_signed_by_the_key() {
        let signer = Signer::new(&random_seed());
        let claims = TokenClaims {
            o: "user:ada".into(),
            s: "sub".into(),
            g: 3,
            w: "w_1".into(),
        };
        let token = signer.token(&claims);
        assert_eq!(signer.verify(&token), Some(claims));
        let other = Signer::new(&random_seed());
        assert_eq!(other.verify(&token), None);
        let (payload, _) = token.split_once('.').unwrap();
        assert_eq!(signer.verify(&format!("{payload}.AAAA")), None);
        assert!(signer.kid().starts_with("ds_"));
    }

    #[test]
    fn webhook_signatures_verify_with_the_published_key() {
        let signer = Signer::new(&random_seed());
        let header = signer.sign_webhook(b"{}", 1_700_000_000);
        let sig = header.rsplit_once("ed25519=").unwrap().1;
        let sig: [u8; 64] = B64.decode(sig).unwrap().try_into().unwrap();
        let x = signer.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
        let public: [u8; 32] = B64.decode(x).unwrap().try_into().unwrap();
        let key = VerifyingKey::from_bytes(&public).unwrap();
        assert!(
            key.verify(b"1700000000.{}", &Signature::from_bytes(&sig))
                .is_ok()
        );
        assert!(
            key.verify(b"1700000001.{}", &Signature::from_bytes(&sig))
                .is_err()
        );
    }
}
