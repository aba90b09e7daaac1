//! `GET /health`: 200 when DynamoDB answers, 503 with details when it does not.

use lambda_http::http::Method;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_is_ok_without_a_key_when_dynamodb_answers() {
    let t = spawn_app().await;
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "ok");
}

#[tokio::test]
async fn health_is_503_when_the_table_is_missing() {
    let t = spawn_app().await;
    t.app.store.client().delete_table().table_name(t.app.store.table()).send().await.unwrap();
    let r = t.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.body);
    assert_eq!(r.body["status"], "degraded");
    assert_eq!(r.body["checks"]["dynamodb"]["status"], "unavailable");
    let text = r.body.to_string();
    assert!(!text.contains("ResourceNotFound") && !text.contains(t.app.store.table()), "no internals in the body");
}

#[tokio::test]
async fn storage_down_is_503_problem_not_500() {
    let t = spawn_app().await;
    t.app.store.client().delete_table().table_name(t.app.store.table()).send().await.unwrap();
    let r = t.send(Method::GET, "/sessions", None).await;
    r.assert_problem(503, "storage_unavailable");
    assert!(!r.body.to_string().contains(t.app.store.table()));
}
