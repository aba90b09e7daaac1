//! The session resource: create, read, list, change, delete, and isolation between owners.


use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{id, spawn_app};

#[tokio::test]
async fn created_session_has_defaults_and_reads_back() {
    let t = spawn_app().await;
    let created = t.create_session("{}").await;
    assert_eq!(created["title"], "New chat");
    assert_eq!(created["model"], t.app.config.default_model.as_str());
    assert_eq!(created["message_count"], 0);
    assert_eq!(created["created_at"], created["updated_at"]);
    let id = created["id"].as_str().unwrap();
    uuid::Uuid::parse_str(id).expect("ids are UUIDs");

    let read = t.send(Method::GET, &format!("/sessions/{id}"), None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created);
}

#[tokio::test]
async fn create_keeps_every_field_given() {
    let t = spawn_app().await;
    let body = json!({
        "title": "Trip to Lisbon",
        "model": "llama3.2:1b",
        "system_prompt": "Answer in French.",
        "options": {"temperature": 0.2, "num_ctx": 4096, "stop": ["\n\n"]},
        "metadata": {"client": "web", "tag": "travel"}
    });
    let created = t.create_session(&body.to_string()).await;
    for field in ["title", "model", "system_prompt", "options", "metadata"] {
        assert_eq!(created[field], body[field], "{field}");
    }
    let id = created["id"].as_str().unwrap();
    let read = t.send(Method::GET, &format!("/sessions/{id}"), None).await;
    assert_eq!(read.body, created);
}

#[tokio::test]
async fn list_is_most_recent_first_and_pages_cover_everything_once() {
    let t = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(t.create_session(&json!({"title": format!("s{i}")}).to_string()).await["id"].as_str().unwrap().to_owned());
        // Distinct millisecond timestamps keep the expected order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(t.all_session_ids(&t.key, 3).await, newest_first);
    assert_eq!(t.all_session_ids(&t.key, 100).await, newest_first);

    let first = t.send(Method::GET, "/sessions?limit=3", None).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 3);
    assert!(first.body["next_cursor"].is_string());
    let default = t.send(Method::GET, "/sessions", None).await;
    assert_eq!(default.body["items"].as_array().unwrap().len(), 7);
    assert!(default.body["next_cursor"].is_null());
}

#[tokio::test]
async fn patch_changes_fields_and_moves_the_session_to_the_top() {
    let t = spawn_app().await;
    let old = t.create_session(r#"{"title": "old", "system_prompt": "Be brief."}"#).await;
    let id = old["id"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let newer = t.create_session(r#"{"title": "newer"}"#).await;
    assert_eq!(t.all_session_ids(&t.key, 10).await[0], newer["id"].as_str().unwrap());

    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let patch = json!({"title": "renamed", "model": "qwen2.5:0.5b", "options": {"seed": 7}, "metadata": {"k": "v"}});
    let r = t.send(Method::PATCH, &format!("/sessions/{id}"), Some(&patch.to_string())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["title"], "renamed");
    assert_eq!(r.body["model"], "qwen2.5:0.5b");
    assert_eq!(r.body["options"], json!({"seed": 7}));
    assert_eq!(r.body["metadata"], json!({"k": "v"}));
    assert_eq!(r.body["system_prompt"], "Be brief.", "fields left out are kept");
    assert_eq!(r.body["created_at"], old["created_at"]);
    assert!(r.body["updated_at"].as_str().unwrap() > old["updated_at"].as_str().unwrap());
    assert_eq!(t.all_session_ids(&t.key, 10).await[0], id, "a change is activity");

    let cleared = t.send(Method::PATCH, &format!("/sessions/{id}"), Some(r#"{"system_prompt": null}"#)).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert!(cleared.body["system_prompt"].is_null());
    let read = t.send(Method::GET, &format!("/sessions/{id}"), None).await;
    assert_eq!(read.body, cleared.body);
}

#[tokio::test]
async fn delete_removes_the_session_and_everything_under_it() {
    let t = spawn_app().await;
    let id = t.create_session("{}").await["id"].as_str().unwrap().to_owned();
    let keep = t.create_session("{}").await["id"].as_str().unwrap().to_owned();
    // Items under the session's partition, more than one batch of deletes.
    let client = t.app.store.client();
    for seq in 1..=60 {
        client
            .put_item()
            .table_name(t.app.store.table())
            .item("PK", AttributeValue::S(format!("SESSION#{id}")))
            .item("SK", AttributeValue::S(format!("MSG#{seq:020}")))
            .item("content", AttributeValue::S("hello".into()))
            .send()
            .await
            .unwrap();
    }

    let r = t.send(Method::DELETE, &format!("/sessions/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_null());

    // Gone at once, for every route, while its items are purged after the answer.
    t.send(Method::GET, &format!("/sessions/{id}"), None).await.assert_problem(404, "not_found");
    t.send(Method::GET, &format!("/sessions/{id}/messages"), None).await.assert_problem(404, "not_found");
    t.send(Method::POST, &format!("/sessions/{id}/messages"), Some(r#"{"content": "hi"}"#)).await.assert_problem(404, "not_found");
    t.send(Method::PATCH, &format!("/sessions/{id}"), Some(r#"{"title": "back"}"#)).await.assert_problem(404, "not_found");
    t.send(Method::DELETE, &format!("/sessions/{id}"), None).await.assert_problem(404, "not_found");
    assert_eq!(t.all_session_ids(&t.key, 10).await, vec![keep.clone()]);
    t.background.idle().await;
    let left = client
        .query()
        .table_name(t.app.store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("SESSION#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(left.count, 0, "no item of the deleted session is left");
    let kept = t.send(Method::GET, &format!("/sessions/{keep}"), None).await;
    assert_eq!(kept.status, StatusCode::OK);
}

#[tokio::test]
async fn another_owners_session_is_not_found_on_every_route() {
    let t = spawn_app().await;
    let mine = t.create_session(r#"{"title": "mine"}"#).await;
    let id = mine["id"].as_str().unwrap();
    let (_, other_key) = t.new_owner().await;
    let path = format!("/sessions/{id}");

    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(r#"{"title": "stolen"}"#)),
        (Method::DELETE, None),
    ] {
        t.send_as(Some(&other_key), method.clone(), &path, body).await.assert_problem(404, "not_found");
    }
    assert!(t.all_session_ids(&other_key, 10).await.is_empty());

    let read = t.send(Method::GET, &path, None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, mine, "the other owner changed nothing");
}

#[tokio::test]
async fn unknown_session_and_unknown_route_are_404() {
    let t = spawn_app().await;
    let r = t.send(Method::GET, &format!("/sessions/{}", uuid::Uuid::new_v4()), None).await;
    r.assert_problem(404, "not_found");
    assert_eq!(r.body["detail"], "session not found");
    let r = t.send(Method::GET, &format!("/sessions/{}/nothing/here", uuid::Uuid::new_v4()), None).await;
    r.assert_problem(404, "not_found");
}

#[tokio::test]
async fn session_ttl_is_written_when_configured() {
    let t = crate::helpers::spawn_app_with(&[("LLMCHAT_SESSION_TTL_DAYS", "30")]).await;
    let created = t.create_session("{}").await;
    let id = created["id"].as_str().unwrap();
    let item = t
        .app
        .store
        .client()
        .get_item()
        .table_name(t.app.store.table())
        .key("PK", AttributeValue::S(format!("SESSION#{id}")))
        .key("SK", AttributeValue::S(llmchat::store::dynamo::schema::SESSION_META_SK.into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expires - now - 30 * 86_400).abs() < 120, "expires_at is 30 days ahead");
    assert!(created["expires_at"].is_string());
}

#[tokio::test]
async fn concurrent_patches_of_different_fields_both_survive() {
    let t = std::sync::Arc::new(spawn_app().await);
    let id = t.create_session("{}").await["id"].as_str().unwrap().to_owned();
    let path = format!("/sessions/{id}");
    for round in 0..5 {
        let title = json!({"title": format!("title {round}")}).to_string();
        let model = json!({"model": format!("model-{round}")}).to_string();
        let (t1, p1, t2, p2) = (t.clone(), path.clone(), t.clone(), path.clone());
        let a = tokio::spawn(async move { t1.send(Method::PATCH, &p1, Some(&title)).await.status });
        let b = tokio::spawn(async move { t2.send(Method::PATCH, &p2, Some(&model)).await.status });
        assert_eq!((a.await.unwrap(), b.await.unwrap()), (StatusCode::OK, StatusCode::OK));
        let read = t.send(Method::GET, &path, None).await.body;
        assert_eq!(read["title"], format!("title {round}"), "round {round}");
        assert_eq!(read["model"], format!("model-{round}"), "round {round}");
    }
}

#[tokio::test]
async fn a_session_past_its_expiry_is_gone_before_dynamodb_removes_it() {
    let t = crate::helpers::spawn_app_with(&[("LLMCHAT_SESSION_TTL_DAYS", "1")]).await;
    let live = id(&t.create_session("{}").await);
    let expired = id(&t.create_session("{}").await);
    // As if a day had passed: DynamoDB's TTL removes expired items only eventually.
    t.app
        .store
        .client()
        .update_item()
        .table_name(t.app.store.table())
        .key("PK", AttributeValue::S(format!("SESSION#{expired}")))
        .key("SK", AttributeValue::S(llmchat::store::dynamo::schema::SESSION_META_SK.into()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N("1000000000".into()))
        .send()
        .await
        .unwrap();
    t.send(Method::GET, &format!("/sessions/{expired}"), None).await.assert_problem(404, "not_found");
    let send = t.send(Method::POST, &format!("/sessions/{expired}/messages"), Some(r#"{"content": "hi"}"#)).await;
    send.assert_problem(404, "not_found");
    // Lists skip it, page by page (the newest, expired, is alone on the first page).
    assert_eq!(t.all_session_ids(&t.key, 1).await, [live.clone()]);
    assert_eq!(t.send(Method::GET, &format!("/sessions/{live}"), None).await.status, StatusCode::OK);
}
