//! DynamoDB implementation of the repositories. Conversions between domain
//! types and items live here and nowhere else.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, WriteRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::schema::*;
use crate::telemetry::error_chain;
use crate::store::{ApiKeyRecord, ApiKeyRepository, Listed, SessionCursor, SessionRepository, StoreError, StoreProbe};
use crate::domain::{Metadata, ModelOptions, OwnerId, Session, Timestamp};

mod messages;
pub mod quotas;
pub mod schema;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Most items one BatchWriteItem call accepts.
const BATCH_WRITE_MAX: usize = 25;
/// How often unprocessed batch items are retried before giving up.
const BATCH_RETRIES: u32 = 8;
/// Keys one purge Query reads (strongly consistent) before deleting them in
/// batches of [`BATCH_WRITE_MAX`]: four batches a round.
pub const PURGE_PAGE_ITEMS: i32 = 4 * BATCH_WRITE_MAX as i32;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Builds the SDK client: the default AWS chain when deployed, fixed local
    /// credentials when `endpoint` points at DynamoDB Local.
    pub async fn client_for(endpoint: Option<&str>) -> Client {
        let mut loader = crate::tls::aws_config_loader();
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(aws_credential_types::Credentials::from_keys("local", "local", None));
            }
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
        }
        Client::new(&loader.load().await)
    }
}

/// Maps an SDK failure to a store error, keeping the service's own message for the logs.
pub(crate) fn sdk_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = err.as_service_error() {
        match service.code() {
            Some("ConditionalCheckFailedException") => return StoreError::ConditionFailed,
            // A single write meeting a transaction in flight on the same item.
            Some("TransactionConflictException") => return StoreError::Conflict,
            _ => {}
        }
        return StoreError::Unavailable(format!(
            "{}: {}",
            service.code().unwrap_or("unknown"),
            service.message().unwrap_or("no message")
        ));
    }
    StoreError::Unavailable(error_chain(&err))
}

/// Why DynamoDB cancelled a transaction: each write's reason code, in the
/// transaction's order (`None` where a write was not objected to); empty when
/// the transaction failed otherwise.
pub(crate) fn cancel_reasons<R>(err: &SdkError<TransactWriteItemsError, R>) -> Vec<Option<&str>> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().iter().map(|r| r.code()).collect(),
        _ => Vec::new(),
    }
}

/// Which conditions of a transaction make it `ConditionFailed` for its caller.
#[derive(Clone, Copy)]
pub(crate) enum Conditions {
    /// Any write's.
    Any,
    /// The first write's only (the others' failing is no answer to the caller).
    First,
}

/// A cancelled transaction as a store error: `ConditionFailed` (see
/// [`Conditions`]), `Conflict` when it met another transaction on the same
/// items at the same moment (DynamoDB cancels one of them; trying again may
/// succeed), else what [`sdk_error`] makes of it.
pub(crate) fn transaction_error<R: std::fmt::Debug>(err: SdkError<TransactWriteItemsError, R>, conditions: Conditions) -> StoreError {
    let reasons = cancel_reasons(&err);
    let failed = match conditions {
        Conditions::Any => reasons.iter().any(|r| *r == Some("ConditionalCheckFailed")),
        Conditions::First => reasons.first() == Some(&Some("ConditionalCheckFailed")),
    };
    if failed {
        return StoreError::ConditionFailed;
    }
    if reasons.contains(&Some("TransactionConflict")) {
        return StoreError::Conflict;
    }
    sdk_error(err)
}

/// For writes whose condition is "the item exists and is the caller's": a
/// failed condition means there is nothing of theirs to write.
fn missing_if_condition_failed(err: StoreError) -> StoreError {
    match err {
        StoreError::ConditionFailed => StoreError::NotFound,
        other => other,
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn to_attr<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Model options are stored as JSON text, not as a DynamoDB map: DynamoDB
/// numbers cannot hold every f64 a client may send (1e-131 underflows).
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::ModelOptions;
    use crate::store::StoreError;

    pub fn encode(options: &ModelOptions) -> Result<String, StoreError> {
        serde_json::to_string(options).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub fn serialize<S: Serializer>(options: &ModelOptions, s: S) -> Result<S::Ok, S::Error> {
        encode(options).map_err(serde::ser::Error::custom)?.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ModelOptions, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// The session item exactly as stored.
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    gsi1_pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    gsi1_sk: Option<String>,
    owner: OwnerId,
    title: String,
    model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    #[serde(default, with = "json_text")]
    options: ModelOptions,
    #[serde(default)]
    metadata: Metadata,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(default)]
    last_seq: u64,
    /// Epoch seconds, read by DynamoDB's TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// Set while a delete is removing the session's items; the session is gone for readers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleting: bool,
}

impl From<&Session> for SessionItem {
    fn from(s: &Session) -> Self {
        SessionItem {
            pk: session_pk(s.id),
            sk: SESSION_META_SK.to_owned(),
            gsi1_pk: Some(owner_gsi_pk(&s.owner)),
            gsi1_sk: Some(owner_gsi_sk(&s.updated_at, s.id)),
            owner: s.owner.clone(),
            title: s.title.clone(),
            model: s.model.clone(),
            system_prompt: s.system_prompt.clone(),
            options: s.options.clone(),
            metadata: s.metadata.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_seq: s.last_seq,
            expires_at: s.expires_at.map(|t| t.unix_seconds()),
            deleting: false,
        }
    }
}

impl TryFrom<SessionItem> for Session {
    type Error = StoreError;

    fn try_from(item: SessionItem) -> Result<Self, StoreError> {
        let id = item
            .pk
            .strip_prefix("SESSION#")
            .and_then(|id| Uuid::try_parse(id).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("session key {}", item.pk)))?;
        let expires_at = item
            .expires_at
            .map(|secs| Timestamp::from_unix_seconds(secs).ok_or_else(|| StoreError::Corrupt(format!("expires_at {secs}"))))
            .transpose()?;
        Ok(Session {
            id,
            owner: item.owner,
            title: item.title,
            model: item.model,
            system_prompt: item.system_prompt,
            options: item.options,
            metadata: item.metadata,
            created_at: item.created_at,
            updated_at: item.updated_at,
            last_seq: item.last_seq,
            expires_at,
        })
    }
}

/// A live session item of `owner`, or `NotFound`: a session being deleted,
/// or past its expiry (DynamoDB's TTL removes items up to days later), is gone.
pub(crate) fn owned_session(item: Item, owner: &OwnerId) -> Result<Session, StoreError> {
    live_session(item).and_then(|session| if &session.owner == owner { Ok(session) } else { Err(StoreError::NotFound) })
}

/// A session item that is neither being deleted nor past its expiry, whoever owns it.
pub(crate) fn live_session(item: Item) -> Result<Session, StoreError> {
    let item: SessionItem = from_item(item)?;
    let expired = item.expires_at.is_some_and(|at| at <= Timestamp::now().unix_seconds());
    if item.deleting || expired {
        return Err(StoreError::NotFound);
    }
    item.try_into()
}

/// The list cursor at a `GSI1SK` of `<updated_at>#<id>`.
fn cursor_at(sort_key: &str) -> Result<SessionCursor, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("{GSI1_SK} {sort_key}"));
    let (updated_at, id) = sort_key.split_once('#').ok_or_else(corrupt)?;
    Ok(SessionCursor {
        updated_at: Timestamp::parse(updated_at).map_err(|_| corrupt())?,
        id: Uuid::try_parse(id).map_err(|_| corrupt())?,
    })
}

impl SessionRepository for DynamoStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&SessionItem::from(session))?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn get_session(&self, owner: &OwnerId, id: Uuid) -> Result<Session, StoreError> {
        let item = self.get_item(session_pk(id), SESSION_META_SK.to_owned()).await?;
        owned_session(item.ok_or(StoreError::NotFound)?, owner)
    }

    async fn list_sessions(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<SessionCursor>,
    ) -> Result<Listed<Session, SessionCursor>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            // Past its expiry, a session is gone before DynamoDB's TTL removes it.
            .filter_expression("attribute_not_exists(#ttl) OR #ttl > :now")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":pk", s(owner_gsi_pk(owner)))
            .expression_attribute_values(":now", AttributeValue::N(Timestamp::now().unix_seconds().to_string()))
            .scan_index_forward(false)
            .limit(limit as i32);
        if let Some(c) = after {
            // The owner comes from the caller, never from the cursor.
            query = query.set_exclusive_start_key(Some(HashMap::from([
                (PK.to_owned(), s(session_pk(c.id))),
                (SK.to_owned(), s(SESSION_META_SK)),
                (GSI1_PK.to_owned(), s(owner_gsi_pk(owner))),
                (GSI1_SK.to_owned(), s(owner_gsi_sk(&c.updated_at, c.id))),
            ])));
        }
        let out = query.send().await.map_err(sdk_error)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| owned_session(item, owner))
            .collect::<Result<Vec<_>, _>>()?;
        // Where the Query stopped, even if the filter left none of that page's items.
        let next = match out.last_evaluated_key.as_ref().and_then(|key| key.get(GSI1_SK)).and_then(|v| v.as_s().ok()) {
            Some(sort_key) => Some(cursor_at(sort_key)?),
            None => None,
        };
        Ok(Listed { items, next })
    }

    async fn update_session(&self, session: &Session, read_at: Timestamp) -> Result<Session, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(session_pk(session.id)))
            .key(SK, s(SESSION_META_SK))
            .condition_expression("#owner = :owner AND attribute_not_exists(deleting) AND updated_at = :read_at")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(session.owner.as_str()))
            .expression_attribute_values(":read_at", s(read_at.to_string()))
            .expression_attribute_values(":title", s(&session.title))
            .expression_attribute_values(":model", s(&session.model))
            .expression_attribute_values(":options", s(json_text::encode(&session.options)?))
            .expression_attribute_values(":metadata", to_attr(&session.metadata)?)
            .expression_attribute_values(":updated_at", s(session.updated_at.to_string()))
            .expression_attribute_values(":gsi1sk", s(owner_gsi_sk(&session.updated_at, session.id)))
            .return_values(ReturnValue::AllNew);
        let set = "SET title = :title, model = :model, options = :options, metadata = :metadata, \
                   updated_at = :updated_at, GSI1SK = :gsi1sk";
        update = match &session.system_prompt {
            Some(prompt) => update
                .update_expression(format!("{set}, system_prompt = :prompt"))
                .expression_attribute_values(":prompt", s(prompt)),
            None => update.update_expression(format!("{set} REMOVE system_prompt")),
        };
        let out = update.send().await.map_err(sdk_error)?;
        owned_session(out.attributes.ok_or(StoreError::NotFound)?, &session.owner)
    }

    async fn delete_session(&self, owner: &OwnerId, id: Uuid) -> Result<(), StoreError> {
        // Gone for readers (`deleting`), for sends (their transaction requires
        // no `deleting`) and for lists (out of the owner's index partition) in
        // this one write, which also queues the session for its purge.
        let now = Timestamp::now();
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(session_pk(id)))
            .key(SK, s(SESSION_META_SK))
            .condition_expression("#owner = :owner AND attribute_not_exists(deleting)")
            .update_expression("SET deleting = :yes, GSI1PK = :queue, GSI1SK = :queued")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":queue", s(PURGE_QUEUE_GSI_PK))
            .expression_attribute_values(":queued", s(owner_gsi_sk(&now, id)))
            .send()
            .await
            .map_err(|e| missing_if_condition_failed(sdk_error(e)))?;
        Ok(())
    }

    async fn purge_session(&self, id: Uuid, budget: std::time::Duration) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + budget;
        // Every round reads from the start of the partition: what was deleted is
        // gone, and an item written meanwhile (a late part of a reply's log) is
        // still found. Strongly consistent, or a send committed just before the
        // DELETE could be missed and its messages left behind for good.
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            let out = self
                .partition_query(id)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#pk, #sk")
                .consistent_read(true)
                .limit(PURGE_PAGE_ITEMS)
                .send()
                .await
                .map_err(sdk_error)?;
            let keys: Vec<Item> = out
                .items
                .unwrap_or_default()
                .into_iter()
                .filter(|k| k.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str) != Some(SESSION_META_SK))
                .collect();
            if keys.is_empty() {
                break;
            }
            self.batch_delete(keys).await?;
        }
        // The session item last, and only while it is marked: a purge never
        // removes a live session, and one already removed is done.
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(session_pk(id)))
            .key(SK, s(SESSION_META_SK))
            .condition_expression("attribute_exists(deleting)")
            .send()
            .await
            .map_err(sdk_error);
        match removed {
            Ok(_) | Err(StoreError::ConditionFailed) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn unfinished_purges(&self, before: Timestamp, limit: u32) -> Result<Vec<Uuid>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :queue AND #sk < :before")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_names("#sk", GSI1_SK)
            .expression_attribute_values(":queue", s(PURGE_QUEUE_GSI_PK))
            .expression_attribute_values(":before", s(before.to_string()))
            .limit(limit as i32)
            .send()
            .await
            .map_err(sdk_error)?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let sort_key = item.get(GSI1_SK).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                cursor_at(sort_key).map(|at| at.id)
            })
            .collect()
    }
}

impl DynamoStore {
    /// One item by key, strongly consistent.
    /// A Query on one session's partition: `#pk` and `#sk` name the keys and
    /// `:pk` is the partition; the caller adds its key condition.
    pub(crate) fn partition_query(&self, session_id: Uuid) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(session_pk(session_id)))
    }

    /// One transaction, its consumed capacity counted on the task's meter.
    pub(crate) async fn transact(
        &self,
        writes: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<(), SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>> {
        let out = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .send()
            .await?;
        quotas::record_write(out.consumed_capacity());
        Ok(())
    }

    pub(crate) async fn get_item(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .return_consumed_capacity(aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        quotas::record_read(out.consumed_capacity());
        Ok(out.item)
    }

    async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_WRITE_MAX) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Unavailable(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt == BATCH_RETRIES {
                    return Err(StoreError::Unavailable("batch delete left items unprocessed".to_owned()));
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
                }
                let sent = self.client.batch_write_item().request_items(&self.table, pending.clone()).send().await.map_err(sdk_error);
                attempt += 1;
                match sent {
                    Ok(out) => pending = out.unprocessed_items.unwrap_or_default().remove(&self.table).unwrap_or_default(),
                    // An item of the batch was in a transaction at that moment: the same batch again.
                    Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct ApiKeyItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    key_id: String,
    owner: OwnerId,
    secret_hash: String,
    created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<Timestamp>,
}

impl ApiKeyRepository for DynamoStore {
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let item = ApiKeyItem {
            pk: api_key_pk(&key.key_id),
            sk: API_KEY_SK.to_owned(),
            key_id: key.key_id.clone(),
            owner: key.owner.clone(),
            secret_hash: key.secret_hash.clone(),
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let Some(item) = self.get_item(api_key_pk(key_id), API_KEY_SK.to_owned()).await? else { return Ok(None) };
        let item: ApiKeyItem = from_item(item)?;
        Ok(Some(ApiKeyRecord {
            key_id: item.key_id,
            owner: item.owner,
            secret_hash: item.secret_hash,
            created_at: item.created_at,
            revoked_at: item.revoked_at,
        }))
    }

    async fn revoke_api_key(&self, key_id: &str, at: Timestamp) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(api_key_pk(key_id)))
            .key(SK, s(API_KEY_SK))
            .condition_expression("attribute_exists(PK)")
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
            .expression_attribute_values(":at", s(at.to_string()))
            .send()
            .await
            .map_err(|e| missing_if_condition_failed(sdk_error(e)))?;
        Ok(())
    }
}

impl StoreProbe for DynamoStore {
    async fn probe(&self) -> Result<(), StoreError> {
        // A read of a key that never exists: proves the table answers, costs half a read unit.
        self.get_item("HEALTH".to_owned(), "HEALTH".to_owned()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::{ErrorMetadata, SdkError};
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    use aws_sdk_dynamodb::types::error::TransactionConflictException;

    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;

    use super::{Conditions, sdk_error, transaction_error};
    use crate::store::StoreError;

    /// An UpdateItem refused as DynamoDB refuses it, with `code` on the wire.
    fn refused(code: &str) -> SdkError<UpdateItemError, ()> {
        let meta = ErrorMetadata::builder().code(code).message("refused").build();
        let err = UpdateItemError::TransactionConflictException(TransactionConflictException::builder().message("refused").meta(meta).build());
        SdkError::service_error(err, ())
    }

    #[test]
    fn a_write_meeting_a_transaction_is_a_conflict_not_unavailable_storage() {
        assert!(matches!(sdk_error(refused("TransactionConflictException")), StoreError::Conflict));
        assert!(matches!(sdk_error(refused("ConditionalCheckFailedException")), StoreError::ConditionFailed));
        assert!(matches!(sdk_error(refused("InternalServerError")), StoreError::Unavailable(_)));
    }

    /// A transaction cancelled as DynamoDB cancels it, one reason per write (`None`: no objection).
    fn cancelled(reasons: &[Option<&str>]) -> SdkError<TransactWriteItemsError, ()> {
        let meta = ErrorMetadata::builder().code("TransactionCanceledException").message("cancelled").build();
        let reasons = reasons.iter().map(|code| CancellationReason::builder().set_code(code.map(str::to_owned)).build());
        let err = TransactionCanceledException::builder().set_cancellation_reasons(Some(reasons.collect())).meta(meta).build();
        SdkError::service_error(TransactWriteItemsError::TransactionCanceledException(err), ())
    }

    #[test]
    fn a_transaction_cancelled_by_another_is_a_conflict_and_a_failed_condition_wins() {
        let conflict = cancelled(&[None, Some("TransactionConflict"), None]);
        assert!(matches!(transaction_error(conflict, Conditions::Any), StoreError::Conflict));
        let both = cancelled(&[Some("ConditionalCheckFailed"), Some("TransactionConflict")]);
        assert!(matches!(transaction_error(both, Conditions::First), StoreError::ConditionFailed));
        // A later write's condition is no answer when only the first one's counts.
        let later = cancelled(&[None, Some("ConditionalCheckFailed")]);
        assert!(matches!(transaction_error(later, Conditions::First), StoreError::Unavailable(_)));
        let later = cancelled(&[None, Some("ConditionalCheckFailed")]);
        assert!(matches!(transaction_error(later, Conditions::Any), StoreError::ConditionFailed));
        assert!(matches!(transaction_error(cancelled(&[None, Some("ThrottlingError")]), Conditions::Any), StoreError::Unavailable(_)));
    }
}
