//! The single-table layout. `template.yaml` declares the same table; a test
//! (`template_matches_schema`) proves the two agree.
//!
//! | item      | PK                 | SK             | GSI1PK          | GSI1SK                |
//! |-----------|--------------------|----------------|-----------------|-----------------------|
//! | session   | `SESSION#<id>`     | `SESSION`      | `OWNER#<owner>` | `<updated_at>#<id>`   |
//! | session being deleted | `SESSION#<id>` | `SESSION` | `PURGE`  | `<deleted_at>#<id>`   |
//! | message   | `SESSION#<id>`     | `MSG#<seq, 20 digits>` |         |                       |
//! | idempotency | `SESSION#<id>`   | `IDEM#<client message id>` |     |                       |
//! | reply log part | `SESSION#<id>`| `LOG#<seq, 20 digits>#<part, 10 digits>` | |                 |
//! | API key   | `APIKEY#<key id>`  | `APIKEY`       |                 |                       |

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::sdk_error;
use crate::store::StoreError;

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1: &str = "GSI1";
pub const GSI1_PK: &str = "GSI1PK";
pub const GSI1_SK: &str = "GSI1SK";
/// Epoch seconds after which DynamoDB's TTL deletes the item.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Sorts above every `MSG#` key, so one descending Query from `MSG#` returns
/// the session first and then its newest messages.
pub const SESSION_META_SK: &str = "SESSION";
pub const MESSAGE_SK_PREFIX: &str = "MSG#";
/// Sorts below `MSG#`, out of the way of that Query.
pub const IDEMPOTENCY_SK_PREFIX: &str = "IDEM#";
/// Also below `MSG#` (and above `IDEM#`): a reply's log never shows in history reads.
pub const LOG_SK_PREFIX: &str = "LOG#";
pub const API_KEY_SK: &str = "APIKEY";

pub fn session_pk(id: uuid::Uuid) -> String {
    format!("SESSION#{id}")
}

pub fn owner_gsi_pk(owner: &crate::domain::OwnerId) -> String {
    format!("OWNER#{owner}")
}

/// The index partition of sessions whose DELETE was answered and whose items
/// are still being removed: the purge queue (see `SessionRepository::purge_session`).
pub const PURGE_QUEUE_GSI_PK: &str = "PURGE";

pub fn owner_gsi_sk(updated_at: &crate::domain::Timestamp, id: uuid::Uuid) -> String {
    format!("{updated_at}#{id}")
}

pub fn message_sk(seq: u64) -> String {
    format!("{MESSAGE_SK_PREFIX}{seq:020}")
}

/// The prefix of every part of reply `seq`'s log.
pub fn log_prefix(seq: u64) -> String {
    format!("{LOG_SK_PREFIX}{seq:020}#")
}

pub fn log_sk(seq: u64, part: u32) -> String {
    format!("{}{part:010}", log_prefix(seq))
}

pub fn idempotency_sk(client_message_id: &str) -> String {
    format!("{IDEMPOTENCY_SK_PREFIX}{client_message_id}")
}

pub fn api_key_pk(key_id: &str) -> String {
    format!("APIKEY#{key_id}")
}

/// Creates the table with its owner index and TTL. An existing table is left as it is.
pub async fn create_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let attr = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
    };
    let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());

    let index = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1_PK, KeyType::Hash).map_err(built)?)
        .key_schema(key(GSI1_SK, KeyType::Range).map_err(built)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(built)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash).map_err(built)?)
        .key_schema(key(SK, KeyType::Range).map_err(built)?)
        .attribute_definitions(attr(PK).map_err(built)?)
        .attribute_definitions(attr(SK).map_err(built)?)
        .attribute_definitions(attr(GSI1_PK).map_err(built)?)
        .attribute_definitions(attr(GSI1_SK).map_err(built)?)
        .global_secondary_indexes(index)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => return Ok(false),
        Err(e) => return Err(sdk_error(e)),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().attribute_name(TTL_ATTRIBUTE).enabled(true).build().map_err(built)?,
        )
        .send()
        .await
        .map_err(sdk_error)?;
    Ok(true)
}
