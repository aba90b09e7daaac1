//! Quotas and the usage ledger in the owner's own partition:
//!
//! | item | PK | SK |
//! |---|---|---|
//! | places among replies in progress (a string set `slots`) | `OWNER#<owner>` | `QUOTA#ACTIVE` |
//! | requests of one minute (`requests`, TTL an hour) | `OWNER#<owner>` | `QUOTA#RPM#<minute>` |
//! | tokens of one day / month (`tokens`, TTL 40 / 400 days) | `OWNER#<owner>` | `QUOTA#DAY#<day>`, `QUOTA#MONTH#<month>` |
//! | the owner's own quotas | `OWNER#<owner>` | `QUOTA#LIMITS` |
//! | a ledger row (sums, added to) | `OWNER#<owner>` | `LEDGER#<day>#<session>#<backend/model>` |
//!
//! Every limit is a condition on the one item that counts it, so concurrent
//! claims cannot pass it together: a claim adds to each counter only if the
//! counter leaves room (`size(slots) < max`, `requests < max`,
//! `tokens <= max - reserve`), in one transaction with the exchange it pays for.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::schema::{PK, SK, TTL_ATTRIBUTE};
use super::{Conditions, DynamoStore, Item, from_item, s, sdk_error, transaction_error};
use crate::domain::{LedgerEntry, OwnerId, Quota, QuotaOverride, Timestamp};
use crate::store::{BeginError, QuotaClaim, QuotaRepository, QuotaUse, Settlement, StoreError, meter};

/// How long counters are kept after their period: the table's TTL removes them.
const MINUTE_TTL_SECS: u64 = 3600;
const DAY_TTL_SECS: u64 = 40 * 86_400;
const MONTH_TTL_SECS: u64 = 400 * 86_400;

/// The order of a claim's writes in a transaction, from its first index.
const CLAIM_ORDER: [Quota; 4] = [Quota::ActiveReplies, Quota::RequestsPerMinute, Quota::TokensPerDay, Quota::TokensPerMonth];

pub fn owner_pk(owner: &OwnerId) -> String {
    format!("OWNER#{owner}")
}

const ACTIVE_SK: &str = "QUOTA#ACTIVE";
const LIMITS_SK: &str = "QUOTA#LIMITS";
const LEDGER_PREFIX: &str = "LEDGER#";

fn rpm_sk(minute: &str) -> String {
    format!("QUOTA#RPM#{minute}")
}

fn day_sk(day: &str) -> String {
    format!("QUOTA#DAY#{day}")
}

fn month_sk(month: &str) -> String {
    format!("QUOTA#MONTH#{month}")
}

fn ledger_sk(e: &LedgerEntry) -> String {
    format!("{LEDGER_PREFIX}{}#{}#{}", e.day, e.session, e.model)
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn ttl(secs: u64) -> AttributeValue {
    n(Timestamp::now().plus(std::time::Duration::from_secs(secs)).unix_seconds())
}

/// Counts what a read consumed on the current task's meter.
pub(crate) fn record_read(c: Option<&ConsumedCapacity>) {
    meter::record(c.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0), 0.0);
}

/// Counts what a write consumed on the current task's meter.
pub(crate) fn record_write(c: &[ConsumedCapacity]) {
    meter::record(0.0, c.iter().filter_map(ConsumedCapacity::capacity_units).sum());
}

/// Which quota refused a transaction whose claim writes start at `first`, if one did.
pub(crate) fn refused_quota(err: &TransactWriteItemsError, first: usize) -> Option<Quota> {
    let TransactWriteItemsError::TransactionCanceledException(c) = err else { return None };
    let reasons = c.cancellation_reasons();
    CLAIM_ORDER
        .iter()
        .enumerate()
        .find(|(i, _)| reasons.get(first + i).and_then(|r| r.code()) == Some("ConditionalCheckFailed"))
        .map(|(_, q)| *q)
}

#[derive(Serialize, Deserialize)]
struct LimitsItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(flatten)]
    limits: QuotaOverride,
}

#[derive(Deserialize)]
struct LedgerItem {
    day: String,
    session: String,
    model: String,
    #[serde(default)]
    replies: u64,
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    thinking_tokens: u64,
    #[serde(default)]
    generation_ms: u64,
    #[serde(default)]
    read_units: f64,
    #[serde(default)]
    write_units: f64,
}

impl DynamoStore {
    fn owner_update(&self, owner: &OwnerId, sk: String) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder().table_name(&self.table).key(PK, s(owner_pk(owner))).key(SK, s(sk))
    }

    /// A claim's writes, in [`CLAIM_ORDER`]: each adds to its counter only if it leaves room.
    pub(crate) fn claim_writes(&self, claim: &QuotaClaim) -> Result<Vec<TransactWriteItem>, StoreError> {
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let limits = &claim.limits;
        let slot = self
            .owner_update(&claim.owner, ACTIVE_SK.to_owned())
            .update_expression("ADD slots :slot")
            .condition_expression("attribute_not_exists(slots) OR size(slots) < :max")
            .expression_attribute_values(":slot", AttributeValue::Ss(vec![claim.slot.clone()]))
            .expression_attribute_values(":max", n(limits.active_replies))
            .build()
            .map_err(built)?;
        let rpm = self
            .owner_update(&claim.owner, rpm_sk(&claim.minute))
            .update_expression("ADD requests :one SET #ttl = if_not_exists(#ttl, :ttl)")
            .condition_expression("attribute_not_exists(requests) OR requests < :max")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(limits.requests_per_minute))
            .expression_attribute_values(":ttl", ttl(MINUTE_TTL_SECS))
            .build()
            .map_err(built)?;
        let tokens = |sk: String, limit: u64, keep: u64| {
            // Room for the reserve: the counter may be at most limit - reserve now.
            let room = limit as i128 - claim.reserve as i128;
            self.owner_update(&claim.owner, sk)
                .update_expression("ADD tokens :reserve SET #ttl = if_not_exists(#ttl, :ttl)")
                .condition_expression("attribute_not_exists(tokens) OR tokens <= :room")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":reserve", n(claim.reserve))
                .expression_attribute_values(":room", n(room))
                .expression_attribute_values(":ttl", ttl(keep))
                .build()
                .map_err(built)
        };
        Ok(vec![
            TransactWriteItem::builder().update(slot).build(),
            TransactWriteItem::builder().update(rpm).build(),
            TransactWriteItem::builder().update(tokens(day_sk(&claim.day), limits.tokens_per_day, DAY_TTL_SECS)?).build(),
            TransactWriteItem::builder().update(tokens(month_sk(&claim.month), limits.tokens_per_month, MONTH_TTL_SECS)?).build(),
        ])
    }

    /// A settlement's writes: the place freed, the tokens corrected, the ledger row added to.
    pub(crate) fn settle_writes(&self, st: &Settlement) -> Result<Vec<TransactWriteItem>, StoreError> {
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let slot = self
            .owner_update(&st.owner, ACTIVE_SK.to_owned())
            .update_expression("DELETE slots :slot")
            .expression_attribute_values(":slot", AttributeValue::Ss(vec![st.slot.clone()]))
            .build()
            .map_err(built)?;
        let correct = |sk: String| {
            self.owner_update(&st.owner, sk)
                .update_expression("ADD tokens :correction")
                .expression_attribute_values(":correction", n(st.token_correction))
                .build()
                .map_err(built)
        };
        let e = &st.entry;
        let ledger = self
            .owner_update(&st.owner, ledger_sk(e))
            .update_expression(
                "SET #day = :day, #session = :session, #model = :model \
                 ADD replies :replies, prompt_tokens :prompt, completion_tokens :completion, thinking_tokens :thinking, \
                 generation_ms :ms, read_units :reads, write_units :writes",
            )
            .expression_attribute_names("#day", "day")
            .expression_attribute_names("#session", "session")
            .expression_attribute_names("#model", "model")
            .expression_attribute_values(":day", s(&e.day))
            .expression_attribute_values(":session", s(&e.session))
            .expression_attribute_values(":model", s(&e.model))
            .expression_attribute_values(":replies", n(e.replies))
            .expression_attribute_values(":prompt", n(e.prompt_tokens))
            .expression_attribute_values(":completion", n(e.completion_tokens))
            .expression_attribute_values(":thinking", n(e.thinking_tokens))
            .expression_attribute_values(":ms", n(e.generation_ms))
            .expression_attribute_values(":reads", n(e.read_units))
            .expression_attribute_values(":writes", n(e.write_units))
            .build()
            .map_err(built)?;
        Ok(vec![
            TransactWriteItem::builder().update(slot).build(),
            TransactWriteItem::builder().update(correct(day_sk(&st.day))?).build(),
            TransactWriteItem::builder().update(correct(month_sk(&st.month))?).build(),
            TransactWriteItem::builder().update(ledger).build(),
        ])
    }

    async fn counter(&self, owner: &OwnerId, sk: String, attribute: &str) -> Result<u64, StoreError> {
        let item = self.get_item(owner_pk(owner), sk).await?;
        Ok(item.and_then(|i| i.get(attribute).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<f64>().ok())).map_or(0, |v| v.max(0.0) as u64))
    }
}

impl QuotaRepository for DynamoStore {
    async fn quota_override(&self, owner: &OwnerId) -> Result<Option<QuotaOverride>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(owner_pk(owner)))
            .key(SK, s(LIMITS_SK))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(sdk_error)?;
        record_read(out.consumed_capacity());
        out.item.map(|item| from_item::<LimitsItem>(item).map(|i| i.limits)).transpose()
    }

    async fn set_quota_override(&self, owner: &OwnerId, quota: Option<&QuotaOverride>) -> Result<(), StoreError> {
        match quota {
            Some(limits) => {
                let item = LimitsItem { pk: owner_pk(owner), sk: LIMITS_SK.to_owned(), limits: *limits };
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(super::to_item(&item)?))
                    .send()
                    .await
                    .map_err(sdk_error)?;
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, s(owner_pk(owner)))
                    .key(SK, s(LIMITS_SK))
                    .send()
                    .await
                    .map_err(sdk_error)?;
            }
        }
        Ok(())
    }

    async fn claim(&self, claim: &QuotaClaim) -> Result<(), BeginError> {
        let writes = self.claim_writes(claim)?;
        let result = self.transact(writes).await;
        match result {
            Ok(()) => Ok(()),
            Err(err) => match err.as_service_error().and_then(|e| refused_quota(e, 0)) {
                Some(quota) => Err(BeginError::Quota(quota)),
                None => Err(BeginError::Store(transaction_error(err, Conditions::Any))),
            },
        }
    }

    async fn settle(&self, settlement: &Settlement) -> Result<(), StoreError> {
        self.transact(self.settle_writes(settlement)?).await.map_err(|err| transaction_error(err, Conditions::Any))
    }

    async fn quota_use(&self, owner: &OwnerId, now: Timestamp) -> Result<QuotaUse, StoreError> {
        let active = self.get_item(owner_pk(owner), ACTIVE_SK.to_owned()).await?;
        let slots = active
            .and_then(|i| i.get("slots").and_then(|v| v.as_ss().ok()).cloned())
            .unwrap_or_default();
        Ok(QuotaUse {
            slots,
            requests_this_minute: self.counter(owner, rpm_sk(&now.minute()), "requests").await?,
            tokens_today: self.counter(owner, day_sk(&now.day()), "tokens").await?,
            tokens_this_month: self.counter(owner, month_sk(&now.month()), "tokens").await?,
        })
    }

    async fn free_slots(&self, owner: &OwnerId, slots: &[String]) -> Result<(), StoreError> {
        if slots.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(owner_pk(owner)))
            .key(SK, s(ACTIVE_SK))
            .update_expression("DELETE slots :dead")
            .expression_attribute_values(":dead", AttributeValue::Ss(slots.to_vec()))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn ledger(&self, owner: &OwnerId, from: &str, to: &str) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut rows = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(owner_pk(owner)))
                .expression_attribute_values(":from", s(format!("{LEDGER_PREFIX}{from}#")))
                // `$` sorts after `#`: every row of day `to`.
                .expression_attribute_values(":to", s(format!("{LEDGER_PREFIX}{to}$")))
                // `GET /usage` right after a reply counts it.
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                let r: LedgerItem = from_item(item)?;
                rows.push(LedgerEntry {
                    day: r.day,
                    session: r.session,
                    model: r.model,
                    replies: r.replies,
                    prompt_tokens: r.prompt_tokens,
                    completion_tokens: r.completion_tokens,
                    thinking_tokens: r.thinking_tokens,
                    generation_ms: r.generation_ms,
                    read_units: r.read_units,
                    write_units: r.write_units,
                });
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(rows),
            }
        }
    }
}
