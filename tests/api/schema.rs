//! The table `llmchat-admin create-table` makes (and tests use) is the table
//! `template.yaml` declares: same keys, index and TTL attribute.

use llmchat::store::dynamo::schema;
use serde_yaml::Value;

use crate::helpers::spawn_app;

fn template_table() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml at the repository root");
    let doc: Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
    doc["Resources"]["ChatTable"]["Properties"].clone()
}

fn names(list: &Value, field: &str, second: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = list
        .as_sequence()
        .expect("a list")
        .iter()
        .map(|e| (e[field].as_str().unwrap().to_owned(), e[second].as_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn template_matches_schema() {
    let t = spawn_app().await;
    let table = template_table();
    let described = t.app.store.client().describe_table().table_name(t.app.store.table()).send().await.unwrap();
    let live = described.table.unwrap();

    let mut live_attrs: Vec<(String, String)> = live
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name().to_owned(), a.attribute_type().as_str().to_owned()))
        .collect();
    live_attrs.sort();
    assert_eq!(names(&table["AttributeDefinitions"], "AttributeName", "AttributeType"), live_attrs);

    let mut live_keys: Vec<(String, String)> =
        live.key_schema().iter().map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned())).collect();
    live_keys.sort();
    assert_eq!(names(&table["KeySchema"], "AttributeName", "KeyType"), live_keys);

    let template_indexes = table["GlobalSecondaryIndexes"].as_sequence().unwrap();
    assert_eq!(template_indexes.len(), live.global_secondary_indexes().len());
    let gsi = &template_indexes[0];
    let live_gsi = &live.global_secondary_indexes()[0];
    assert_eq!(gsi["IndexName"].as_str(), live_gsi.index_name());
    let mut live_gsi_keys: Vec<(String, String)> = live_gsi
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
        .collect();
    live_gsi_keys.sort();
    assert_eq!(names(&gsi["KeySchema"], "AttributeName", "KeyType"), live_gsi_keys);
    assert_eq!(
        gsi["Projection"]["ProjectionType"].as_str(),
        live_gsi.projection().and_then(|p| p.projection_type()).map(|p| p.as_str())
    );

    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(schema::TTL_ATTRIBUTE));
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(table["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
}

/// The purge that follows a DELETE's answer stops (between batches) before
/// Lambda would cut the sessions function's invocation.
#[test]
fn the_purge_budget_fits_the_sessions_functions_timeout() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let timeout = doc["Resources"]["SessionsFunction"]["Properties"]["Timeout"].as_u64().expect("SessionsFunction sets its Timeout");
    // A batch of deletes and its Query take well under five seconds.
    let margin = std::time::Duration::from_secs(5);
    assert!(llmchat::sessions::PURGE_BUDGET + margin <= std::time::Duration::from_secs(timeout));
}
