//! JWT auth: valid accepted; expired, wrong secret, `alg: none`, missing rejected with 401
//! before any upgrade.

use agentwire_server::Authenticator;
use agentwire_startup::{AgentwireConfig, AuthMode};
use agentwire_test::{TestServer, WsClient};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

async fn jwt_server() -> TestServer {
    let mut config = agentwire_test::test_config();
    config.auth.mode = AuthMode::Jwt;
    config.auth.jwt_secret = Some(SECRET.into());
    TestServer::start_with(config, Vec::new()).await
}

fn minted(secret: &str, user: &str, ttl_secs: u64) -> String {
    let mut config = AgentwireConfig::default();
    config.auth.jwt_secret = Some(secret.into());
    Authenticator::from_config(&config)
        .mint(user, std::time::Duration::from_secs(ttl_secs))
        .unwrap()
}

/// Base64url without padding, for hand-made tokens.
fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn status_of(err: WsError) -> u16 {
    match err {
        WsError::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP error, got {other}"),
    }
}

#[tokio::test]
async fn valid_tokens_are_accepted_in_each_position() {
    let server = jwt_server().await;
    let token = minted(SECRET, "grace", 60);

    let c = WsClient::connect(&server.ws_url(&format!("token={token}")))
        .await
        .unwrap();
    assert_eq!(c.hello["data"]["user_id"], "grace");

    let mut req = server.ws_url("").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut c = WsClient::connect_request(req).await.unwrap();
    assert_eq!(c.run("r", "echo", "hi").await.1.len(), 5);

    let mut req = server.ws_url("").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("agentwire.v1, bearer.{token}").parse().unwrap(),
    );
    let (stream, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "agentwire.v1");
    drop(stream);
    server.stop().await;
}

/// Signs `claims` with HS256 and `secret`, whatever they say (e.g. an `exp` in the past).
fn signed(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_rejected_with_401() {
    let server = jwt_server().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = signed(
        SECRET,
        serde_json::json!({"sub": "grace", "exp": now - 3600}),
    );
    let no_exp = signed(SECRET, serde_json::json!({"sub": "grace"}));
    let reserved = signed(
        SECRET,
        serde_json::json!({"sub": "__health_1", "exp": now + 60}),
    );
    let wrong_secret = minted("another-secret-that-is-also-32-bytes!", "grace", 60);
    let none_alg = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(format!(r#"{{"sub":"grace","exp":{}}}"#, now + 60).as_bytes())
    );
    // The control: the same claims, properly signed, are accepted.
    let good = signed(SECRET, serde_json::json!({"sub": "grace", "exp": now + 60}));
    assert!(
        WsClient::connect(&server.ws_url(&format!("token={good}")))
            .await
            .is_ok()
    );
    for (label, query) in [
        ("expired", format!("token={expired}")),
        ("no exp", format!("token={no_exp}")),
        ("reserved sub", format!("token={reserved}")),
        ("wrong secret", format!("token={wrong_secret}")),
        ("alg none", format!("token={none_alg}")),
        ("garbage", "token=abc".to_owned()),
        ("missing", String::new()),
        ("dev user in jwt mode", "user=grace".to_owned()),
    ] {
        let err = WsClient::connect(&server.ws_url(&query))
            .await
            .expect_err(label);
        assert_eq!(status_of(err), 401, "{label}");
    }
    server.stop().await;
}

#[tokio::test]
async fn dev_auth_needs_a_valid_unreserved_user() {
    let server = TestServer::start().await;
    for query in ["", "user=", "user=__health_1", "user=bad%20id"] {
        let err = WsClient::connect(&server.ws_url(query))
            .await
            .expect_err(query);
        assert_eq!(status_of(err), 401, "{query}");
    }
    server.stop().await;
}

fn body_of(err: WsError) -> String {
    match err {
        WsError::Http(resp) => {
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned()
        }
        other => panic!("expected an HTTP error, got {other}"),
    }
}

/// The 401 bodies say what a person can do, in words, without the JWT library's internals.
#[tokio::test]
async fn auth_refusals_say_what_to_do_without_library_internals() {
    let server = jwt_server().await;
    let wrong_secret = minted("another-secret-that-is-also-32-bytes!", "grace", 60);
    for (query, expected) in [
        ("token=abc".to_owned(), "it is not a JWT"),
        ("token=a.b.c".to_owned(), "it is not a JWT"),
        (
            format!("token={wrong_secret}"),
            "it was not signed with this server's secret (auth.jwt_secret)",
        ),
        (
            "user=grace".to_owned(),
            "?user= is ignored: this server uses JWT auth",
        ),
    ] {
        let err = WsClient::connect(&server.ws_url(&query))
            .await
            .expect_err(&query);
        let body = body_of(err);
        assert!(body.contains(expected), "{query}: {body}");
        for internal in ["JSON error", "line 1 column", "InvalidSignature", "Base64"] {
            assert!(!body.contains(internal), "{query}: {body}");
        }
    }
    server.stop().await;

    let no_secret = Authenticator::from_config(&AgentwireConfig::default())
        .mint("grace", std::time::Duration::from_secs(60))
        .expect_err("no secret, no token");
    let message = no_secret.to_string();
    assert!(message.contains("AGENTWIRE_AUTH__JWT_SECRET"), "{message}");
    assert!(message.contains("openssl rand -hex 32"), "{message}");
    assert!(!message.contains("invalid token"), "{message}");
}
