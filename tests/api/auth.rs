//! API keys: no key, a bad key, a revoked key: 401 problem+json.

use lambda_http::http::{Method, StatusCode};
use llmchat::domain::Timestamp;
use llmchat::store::ApiKeyRepository;

use crate::helpers::spawn_app;

#[tokio::test]
async fn requests_without_a_valid_key_are_401() {
    let t = spawn_app().await;
    let real_id = llmchat::auth::key_id_of(&t.key).unwrap().to_owned();
    let wrong_secret = format!("lck_{real_id}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let unknown = "lck_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for key in [None, Some(""), Some("garbage"), Some(unknown), Some(wrong_secret.as_str())] {
        for (method, path) in [(Method::POST, "/sessions"), (Method::GET, "/sessions")] {
            let r = t.send_as(key, method, path, None).await;
            r.assert_problem(401, "unauthorized");
            assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
        }
    }
    assert!(t.all_session_ids(&t.key, 10).await.is_empty(), "rejected requests created nothing");
}

#[tokio::test]
async fn a_revoked_key_stops_working() {
    let t = spawn_app().await;
    let r = t.send(Method::GET, "/sessions", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let key_id = llmchat::auth::key_id_of(&t.key).unwrap();
    t.app.store.revoke_api_key(key_id, Timestamp::now()).await.unwrap();
    t.send(Method::GET, "/sessions", None).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn keys_are_stored_hashed_never_in_clear() {
    let t = spawn_app().await;
    let items = t.app.store.client().scan().table_name(t.app.store.table()).send().await.unwrap();
    let dump = format!("{:?}", items.items());
    // `lck_<key id>_<secret>`; the secret itself may contain `_`.
    let secret = t.key.splitn(3, '_').nth(2).unwrap();
    assert!(secret.len() >= 40, "the whole secret: {secret}");
    assert!(dump.contains("secret_hash"));
    assert!(!dump.contains(secret), "the secret is not in the table");
}
