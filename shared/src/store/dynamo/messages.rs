//! Messages and idempotency records in the session's partition.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::quotas::{record_read, refused_quota};
use super::{Conditions, DynamoStore, Item, cancel_reasons, from_item, live_session, owned_session, s, sdk_error, to_attr, to_item, transaction_error};
use super::schema::*;
use crate::domain::tokens::TokenCalibration;
use crate::domain::{ErrorCode, Message, MessageStatus, Order, OwnerId, Role, Session, Spend, Timestamp, Usage};
use crate::store::{BeginError, IdempotencyRecord, Listed, LogPart, MessageRepository, QuotaClaim, SendState, Settlement, StoreError};

#[derive(Serialize, Deserialize)]
struct MessageItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    id: Uuid,
    seq: u64,
    role: Role,
    content: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    thinking: String,
    /// The asked-for format, as JSON text (a schema's numbers kept exactly as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spend: Option<Spend>,
    status: MessageStatus,
    created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    context_truncated: bool,
    /// The reply's `TokenCalibration`, as its ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_token_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<Timestamp>,
    /// The generation token of the one writer allowed while streaming.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r#gen: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cancel_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

/// One part of a streaming reply's log.
#[derive(Serialize, Deserialize)]
struct LogItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    part: u32,
    offset: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    thinking: String,
    text: String,
    expires_at: i64,
}

impl MessageItem {
    fn new(m: &Message, expires_at: Option<i64>) -> Self {
        MessageItem {
            pk: session_pk(m.session_id),
            sk: message_sk(m.seq),
            id: m.id,
            seq: m.seq,
            role: m.role,
            content: m.content.clone(),
            thinking: m.thinking.clone(),
            format: m.format.as_ref().map(|f| f.to_string()),
            spend: m.spend.clone(),
            status: m.status,
            created_at: m.created_at,
            completed_at: m.completed_at,
            model: m.model.clone(),
            usage: m.usage.clone(),
            done_reason: m.done_reason.clone(),
            client_message_id: m.client_message_id.clone(),
            context_truncated: m.context_truncated,
            prompt_token_ratio: m.prompt_calibration.map(TokenCalibration::ratio),
            error_code: m.error_code,
            lease_until: m.lease_until,
            r#gen: m.generation.clone(),
            cancel_requested: m.cancel_requested,
            expires_at,
        }
    }

    fn into_message(self, session_id: Uuid) -> Message {
        Message {
            id: self.id,
            session_id,
            seq: self.seq,
            role: self.role,
            content: self.content,
            thinking: self.thinking,
            format: self.format.and_then(|f| serde_json::from_str(&f).ok()),
            spend: self.spend,
            status: self.status,
            created_at: self.created_at,
            completed_at: self.completed_at,
            model: self.model,
            usage: self.usage,
            done_reason: self.done_reason,
            client_message_id: self.client_message_id,
            context_truncated: self.context_truncated,
            prompt_calibration: self.prompt_token_ratio.map(TokenCalibration::from_ratio),
            error_code: self.error_code,
            lease_until: self.lease_until,
            generation: self.r#gen,
            cancel_requested: self.cancel_requested,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IdempotencyItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    client_message_id: String,
    fingerprint: String,
    user_seq: u64,
    reply_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

fn message_from(item: Item, session_id: Uuid) -> Result<Message, StoreError> {
    Ok(from_item::<MessageItem>(item)?.into_message(session_id))
}

fn built<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// How long the parts of a reply's log are kept: the final reply holds the
/// whole text, so the table's TTL removes them a day later at no cost.
const LOG_PART_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The condition of every generator write (fencing): the reply is still
/// `streaming` and still held by this generation.
const HELD_BY_GENERATION: &str = "#status = :streaming AND #gen = :gen";

impl DynamoStore {
    /// An update of the reply (in a transaction) that applies only while its
    /// generator still holds it: a finished, cancelled, taken-over or deleted
    /// reply is never written over.
    fn fenced(&self, reply: &Message) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.table)
            .key(PK, s(session_pk(reply.session_id)))
            .key(SK, s(message_sk(reply.seq)))
            .condition_expression(HELD_BY_GENERATION)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#gen", "gen")
            .expression_attribute_values(":streaming", s("streaming"))
            .expression_attribute_values(":gen", s(reply.generation.clone().unwrap_or_default()))
    }

    /// The parts of reply `seq`'s log from `from_part` on, in order (strongly consistent).
    async fn read_log(&self, session_id: Uuid, seq: u64, from_part: u32) -> Result<Vec<LogPart>, StoreError> {
        let mut parts = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .partition_query(session_id)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_values(":from", s(log_sk(seq, from_part)))
                .expression_attribute_values(":to", s(log_sk(seq, u32::MAX)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(sdk_error)?;
            record_read(out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                let item: LogItem = from_item(item)?;
                parts.push(LogPart { index: item.part, offset: item.offset as usize, thinking: item.thinking, text: item.text });
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(parts),
            }
        }
    }

    /// A reply still streaming keeps its text in its log: put it in `content`
    /// (a reply with no log yet keeps the content its item holds).
    async fn assemble(&self, mut message: Message) -> Result<Message, StoreError> {
        if message.status == MessageStatus::Streaming {
            let parts = self.read_log(message.session_id, message.seq, 0).await?;
            if !parts.is_empty() {
                message.thinking = parts.iter().map(|p| p.thinking.as_str()).collect();
                message.content = parts.into_iter().map(|p| p.text).collect();
            }
        }
        Ok(message)
    }
}

impl MessageRepository for DynamoStore {
    async fn load_for_send(&self, session_id: Uuid, window: usize) -> Result<SendState, StoreError> {
        // The session item's sort key sorts above every message key: read
        // backwards from the top and it comes first, then the newest messages.
        let out = self
            .partition_query(session_id)
            .key_condition_expression("#pk = :pk AND #sk >= :from")
            .expression_attribute_values(":from", s(MESSAGE_SK_PREFIX))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(window as i32 + 1)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        record_read(out.consumed_capacity());
        let mut items = out.items.unwrap_or_default().into_iter();
        let first = items.next().ok_or(StoreError::NotFound)?;
        if first.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str) != Some(SESSION_META_SK) {
            return Err(StoreError::NotFound);
        }
        let session = live_session(first)?;
        let mut recent = items.map(|item| message_from(item, session_id)).collect::<Result<Vec<_>, _>>()?;
        // Only the newest message can still be streaming.
        if let Some(newest) = recent.first_mut() {
            *newest = self.assemble(newest.clone()).await?;
        }
        Ok(SendState { session, recent, older_exist: out.last_evaluated_key.is_some() })
    }

    async fn begin_exchange(
        &self,
        session: &Session,
        expected_seq: u64,
        user: &Message,
        reply: &Message,
        idempotency: Option<&IdempotencyRecord>,
        abandoned: Option<&Message>,
        claim: &QuotaClaim,
    ) -> Result<(), BeginError> {
        let expires_at = session.expires_at.map(|t| t.unix_seconds());
        let now = user.created_at;
        let session_update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(session_pk(session.id)))
            .key(SK, s(SESSION_META_SK))
            .update_expression("SET last_seq = :reply_seq, updated_at = :now, GSI1SK = :gsi1sk")
            .condition_expression("#owner = :owner AND last_seq = :expected AND attribute_not_exists(deleting)")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(session.owner.as_str()))
            .expression_attribute_values(":expected", AttributeValue::N(expected_seq.to_string()))
            .expression_attribute_values(":reply_seq", AttributeValue::N(reply.seq.to_string()))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":gsi1sk", s(owner_gsi_sk(&now, session.id)))
            // On a failed condition, the session as it is: deleted meanwhile, or busy.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(built)?;
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(PK)")
                .build()
                .map_err(built)
        };
        let mut writes = vec![
            TransactWriteItem::builder().update(session_update).build(),
            TransactWriteItem::builder().put(put(to_item(&MessageItem::new(user, expires_at))?)?).build(),
            TransactWriteItem::builder().put(put(to_item(&MessageItem::new(reply, expires_at))?)?).build(),
        ];
        if let Some(idem) = idempotency {
            let item = IdempotencyItem {
                pk: session_pk(session.id),
                sk: idempotency_sk(&idem.client_message_id),
                client_message_id: idem.client_message_id.clone(),
                fingerprint: idem.fingerprint.clone(),
                user_seq: idem.user_seq,
                reply_seq: idem.reply_seq,
                expires_at,
            };
            writes.push(TransactWriteItem::builder().put(put(to_item(&item)?)?).build());
        }
        if let Some(old) = abandoned {
            // Its writer is gone: store what it wrote, as `incomplete`, unless it came back meanwhile.
            let update = Update::builder()
                .table_name(&self.table)
                .key(PK, s(session_pk(old.session_id)))
                .key(SK, s(message_sk(old.seq)))
                .update_expression(
                    "SET #status = :incomplete, content = :content, thinking = :thinking, completed_at = :now REMOVE lease_until, #gen, cancel_requested",
                )
                .condition_expression("#status = :streaming AND lease_until < :now")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#gen", "gen")
                .expression_attribute_values(":incomplete", s("incomplete"))
                .expression_attribute_values(":streaming", s("streaming"))
                .expression_attribute_values(":content", s(&old.content))
                .expression_attribute_values(":thinking", s(&old.thinking))
                .expression_attribute_values(":now", s(now.to_string()))
                .build()
                .map_err(built)?;
            writes.push(TransactWriteItem::builder().update(update).build());
        }
        let abandoned_at = writes.len() - 1;
        let claim_at = writes.len();
        writes.extend(self.claim_writes(claim)?);
        let result = self.transact(writes).await;
        let Err(err) = result else { return Ok(()) };
        if let Some(quota) = err.as_service_error().and_then(|e| refused_quota(e, claim_at)) {
            return Err(BeginError::Quota(quota));
        }
        let reasons = cancel_reasons(&err);
        let failed = |index: usize| reasons.get(index) == Some(&Some("ConditionalCheckFailed"));
        if idempotency.is_some() && failed(3) {
            return Err(BeginError::Duplicate);
        }
        // A DELETE that came between the read and this transaction: the session is gone, not busy.
        if failed(0) {
            let session_now = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().first().and_then(|r| r.item()),
                _ => None,
            };
            if session_now.is_none_or(|item| item.contains_key("deleting")) {
                return Err(BeginError::Store(StoreError::NotFound));
            }
        }
        if failed(0) || (abandoned.is_some() && failed(abandoned_at)) {
            return Err(BeginError::Busy);
        }
        // Another transaction on the same items (a send in the same session,
        // or any of the owner's on its quota counters), in flight at the same
        // moment, cancels this one with TransactionConflict: worth another try.
        Err(BeginError::Store(transaction_error(err, Conditions::Any)))
    }

    async fn get_idempotency(&self, session_id: Uuid, client_message_id: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Some(item) = self.get_item(session_pk(session_id), idempotency_sk(client_message_id)).await? else {
            return Ok(None);
        };
        let item: IdempotencyItem = from_item(item)?;
        Ok(Some(IdempotencyRecord {
            client_message_id: item.client_message_id,
            fingerprint: item.fingerprint,
            user_seq: item.user_seq,
            reply_seq: item.reply_seq,
        }))
    }

    async fn get_message(&self, session_id: Uuid, seq: u64) -> Result<Option<Message>, StoreError> {
        let Some(item) = self.get_item(session_pk(session_id), message_sk(seq)).await? else { return Ok(None) };
        Ok(Some(self.assemble(message_from(item, session_id)?).await?))
    }

    async fn find_message(&self, owner: &OwnerId, session_id: Uuid, message_id: Uuid) -> Result<Option<Message>, StoreError> {
        // Newest first from the session item down: the session (for the owner
        // check) and the message pass the filter, nothing else is returned.
        let mut start: Option<Item> = None;
        let mut session_checked = false;
        loop {
            let out = self
                .partition_query(session_id)
                .key_condition_expression("#pk = :pk AND #sk >= :from")
                .filter_expression("attribute_exists(#owner) OR id = :id")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":from", s(MESSAGE_SK_PREFIX))
                .expression_attribute_values(":id", s(message_id.to_string()))
                .scan_index_forward(false)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                if item.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str) == Some(SESSION_META_SK) {
                    owned_session(item, owner)?;
                    session_checked = true;
                } else if session_checked {
                    return Ok(Some(self.assemble(message_from(item, session_id)?).await?));
                }
            }
            if !session_checked {
                return Err(StoreError::NotFound);
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }

    async fn append_reply(&self, reply: &Message, part: Option<&LogPart>) -> Result<(), StoreError> {
        let lease = reply.lease_until.map(|t| t.to_string()).unwrap_or_default();
        let renew = self
            .fenced(reply)
            .update_expression("SET lease_until = :lease")
            .condition_expression(format!("{HELD_BY_GENERATION} AND attribute_not_exists(cancel_requested)"))
            .expression_attribute_values(":lease", s(lease))
            .build()
            .map_err(built)?;
        let mut writes = vec![TransactWriteItem::builder().update(renew).build()];
        if let Some(part) = part {
            let item = LogItem {
                pk: session_pk(reply.session_id),
                sk: log_sk(reply.seq, part.index),
                part: part.index,
                offset: part.offset as u64,
                thinking: part.thinking.clone(),
                text: part.text.clone(),
                expires_at: Timestamp::now().plus(LOG_PART_TTL).unix_seconds(),
            };
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(&item)?))
                .condition_expression("attribute_not_exists(PK)")
                .build()
                .map_err(built)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(writes).await.map_err(|err| transaction_error(err, Conditions::Any))
    }

    async fn request_cancel(&self, session_id: Uuid, seq: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(session_pk(session_id)))
            .key(SK, s(message_sk(seq)))
            .update_expression("SET cancel_requested = :yes")
            .condition_expression("#status = :streaming")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":streaming", s("streaming"))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(sdk_error);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn delete_exchange(&self, session_id: Uuid, reply_seq: u64) -> Result<(), StoreError> {
        let delete = |seq: u64, condition: &str, role: &str| {
            aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .key(PK, s(session_pk(session_id)))
                .key(SK, s(message_sk(seq)))
                .condition_expression(condition)
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":streaming", s("streaming"))
                .expression_attribute_values(":role", s(role))
                .build()
                .map_err(built)
        };
        let ended = "#role = :role AND #status <> :streaming";
        let writes = vec![
            TransactWriteItem::builder().delete(delete(reply_seq, ended, "assistant")?).build(),
            TransactWriteItem::builder().delete(delete(reply_seq.saturating_sub(1), ended, "user")?).build(),
        ];
        let result = self.client.transact_write_items().set_transact_items(Some(writes)).send().await;
        if let Err(err) = result {
            return Err(transaction_error(err, Conditions::Any));
        }
        // The log expires by itself (TTL); removing it now leaves nothing behind.
        let keys = self
            .read_log(session_id, reply_seq, 0)
            .await?
            .into_iter()
            .map(|p| Item::from([(PK.to_owned(), s(session_pk(session_id))), (SK.to_owned(), s(log_sk(reply_seq, p.index)))]))
            .collect();
        self.batch_delete(keys).await
    }

    async fn read_reply(&self, session_id: Uuid, seq: u64, from_part: u32) -> Result<Option<(Message, Vec<LogPart>)>, StoreError> {
        let Some(item) = self.get_item(session_pk(session_id), message_sk(seq)).await? else { return Ok(None) };
        let reply = message_from(item, session_id)?;
        let parts = if reply.status == MessageStatus::Streaming {
            self.read_log(session_id, seq, from_part).await?
        } else {
            Vec::new()
        };
        Ok(Some((reply, parts)))
    }

    async fn finish_reply(&self, reply: &Message, settlement: &Settlement) -> Result<(), StoreError> {
        // Only while this generation holds the reply: a deleted session's reply
        // is not brought back, and a taken-over one is not written over. The
        // quota claim settles in the same transaction, or not at all.
        let mut set = vec!["content = :content", "thinking = :thinking", "#status = :status"];
        let mut update = self
            .fenced(reply)
            .expression_attribute_values(":content", s(&reply.content))
            .expression_attribute_values(":thinking", s(&reply.thinking))
            .expression_attribute_values(":status", to_attr(&reply.status)?);
        if let Some(at) = reply.completed_at {
            set.push("completed_at = :completed_at");
            update = update.expression_attribute_values(":completed_at", s(at.to_string()));
        }
        if let Some(usage) = &reply.usage {
            set.push("#usage = :usage");
            update = update.expression_attribute_names("#usage", "usage").expression_attribute_values(":usage", to_attr(usage)?);
        }
        if let Some(spend) = &reply.spend {
            set.push("spend = :spend");
            update = update.expression_attribute_values(":spend", to_attr(spend)?);
        }
        if let Some(reason) = &reply.done_reason {
            set.push("done_reason = :done_reason");
            update = update.expression_attribute_values(":done_reason", s(reason));
        }
        if let Some(calibration) = reply.prompt_calibration {
            set.push("prompt_token_ratio = :prompt_token_ratio");
            update = update.expression_attribute_values(":prompt_token_ratio", AttributeValue::N(calibration.ratio().to_string()));
        }
        if let Some(code) = reply.error_code {
            set.push("error_code = :error_code");
            update = update.expression_attribute_values(":error_code", to_attr(&code)?);
        }
        let update = update
            .update_expression(format!("SET {} REMOVE lease_until, #gen, cancel_requested", set.join(", ")))
            .build()
            .map_err(built)?;
        let mut writes = vec![TransactWriteItem::builder().update(update).build()];
        writes.extend(self.settle_writes(settlement)?);
        self.transact(writes).await.map_err(|err| transaction_error(err, Conditions::First))
    }

    async fn list_messages(
        &self,
        session_id: Uuid,
        order: Order,
        limit: u32,
        after_seq: Option<u64>,
    ) -> Result<Listed<Message, u64>, StoreError> {
        let (condition, bound) = match (order, after_seq) {
            (_, None) => ("#pk = :pk AND begins_with(#sk, :bound)", MESSAGE_SK_PREFIX.to_owned()),
            (Order::Asc, Some(seq)) => match seq.checked_add(1) {
                Some(next) => ("#pk = :pk AND #sk BETWEEN :bound AND :top", message_sk(next)),
                // Nothing comes after the largest seq there can be.
                None => return Ok(Listed { items: Vec::new(), next: None }),
            },
            (Order::Desc, Some(seq)) => ("#pk = :pk AND #sk BETWEEN :bottom AND :bound", message_sk(seq.saturating_sub(1))),
        };
        let mut query = self
            .partition_query(session_id)
            .key_condition_expression(condition)
            .expression_attribute_values(":bound", s(bound))
            .scan_index_forward(order == Order::Asc)
            // A history read right after a `201` must show that exchange.
            .consistent_read(true)
            .limit(limit as i32);
        match (order, after_seq) {
            (Order::Asc, Some(_)) => query = query.expression_attribute_values(":top", s(message_sk(u64::MAX))),
            (Order::Desc, Some(_)) => query = query.expression_attribute_values(":bottom", s(message_sk(0))),
            _ => {}
        }
        if order == Order::Desc && after_seq == Some(1) {
            // Nothing comes before the first message.
            return Ok(Listed { items: Vec::new(), next: None });
        }
        let out = query.send().await.map_err(sdk_error)?;
        let mut items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| message_from(item, session_id))
            .collect::<Result<Vec<_>, _>>()?;
        for message in items.iter_mut().filter(|m| m.status == MessageStatus::Streaming) {
            *message = self.assemble(message.clone()).await?;
        }
        let next = match (&out.last_evaluated_key, items.last()) {
            (Some(_), Some(last)) => Some(last.seq),
            _ => None,
        };
        Ok(Listed { items, next })
    }
}
