//! `GET /usage`: what an owner used and what it cost, from the usage ledger,
//! and where the owner stands against its quotas.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use crate::domain::{LedgerEntry, OwnerId, Period, Timestamp};
use crate::store::{QuotaRepository, StoreError};

/// Longest period one report covers, in days.
pub const MAX_USAGE_DAYS: i64 = 366;

/// Why a usage report was refused.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A bad `from`, `to` or `group_by`.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// How rows are added up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Day,
    Model,
    Session,
}

/// Sums over a group of ledger rows, and what they cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Totals {
    pub replies: u64,
    pub prompt_tokens: u64,
    /// Thinking included.
    pub completion_tokens: u64,
    pub thinking_tokens: u64,
    pub total_tokens: u64,
    pub generation_ms: u64,
    pub read_units: f64,
    pub write_units: f64,
    pub cost: Cost,
}

/// An estimate in USD from the deployment's prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Cost {
    /// The models' tokens, for models with a configured price (`null` when none has one).
    pub model: Option<f64>,
    /// Function time (generation time × the function's memory) and requests.
    pub lambda: f64,
    /// DynamoDB read and write units, on demand.
    pub dynamodb: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Group {
    /// The day (`YYYY-MM-DD`), the model (`backend/model`) or the session id
    /// (`chat-completions` for the stateless route).
    pub key: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// Where the owner stands against one quota.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaStanding {
    pub limit: u64,
    pub used: u64,
    /// Seconds until the period starts afresh (none for replies in progress).
    pub resets_in: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaStandings {
    pub active_replies: QuotaStanding,
    pub requests_per_minute: QuotaStanding,
    pub tokens_per_day: QuotaStanding,
    pub tokens_per_month: QuotaStanding,
}

/// Body of `GET /usage`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageReport {
    /// First and last day covered (UTC, inclusive).
    pub from: String,
    pub to: String,
    pub group_by: GroupBy,
    pub currency: &'static str,
    pub groups: Vec<Group>,
    pub totals: Totals,
    pub quotas: QuotaStandings,
}

/// `from`, `to` (days, `YYYY-MM-DD`; default: this month so far) and `group_by` (default `day`).
pub fn period(from: Option<&str>, to: Option<&str>, group_by: Option<&str>, now: Timestamp) -> Result<(String, String, GroupBy), UsageError> {
    let day = |name: &str, value: &str| {
        time::Date::parse(value, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| UsageError::Invalid(format!("{name} is a day, YYYY-MM-DD")))
    };
    let to = day("to", to.unwrap_or(&now.day()))?;
    let from = match from {
        Some(f) => day("from", f)?,
        None => day("from", &format!("{}-01", now.month()))?,
    };
    if from > to {
        return Err(UsageError::Invalid("from is after to".to_owned()));
    }
    if (to - from).whole_days() >= MAX_USAGE_DAYS {
        return Err(UsageError::Invalid(format!("a report covers at most {MAX_USAGE_DAYS} days")));
    }
    let group_by = match group_by {
        None | Some("day") => GroupBy::Day,
        Some("model") => GroupBy::Model,
        Some("session") => GroupBy::Session,
        Some(_) => return Err(UsageError::Invalid("group_by is day, model or session".to_owned())),
    };
    Ok((from.to_string(), to.to_string(), group_by))
}

/// The owner's report for `from`..=`to`, grouped, with quota standings at `now`.
pub async fn report<S: QuotaRepository>(
    store: &S,
    config: &Config,
    owner: &OwnerId,
    (from, to, group_by): (String, String, GroupBy),
    now: Timestamp,
) -> Result<UsageReport, UsageError> {
    let rows = store.ledger(owner, &from, &to).await?;
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut totals = Totals::default();
    for row in &rows {
        let key = match group_by {
            GroupBy::Day => row.day.clone(),
            GroupBy::Model => row.model.clone(),
            GroupBy::Session => row.session.clone(),
        };
        add(groups.entry(key).or_default(), row, config);
        add(&mut totals, row, config);
    }
    let limits = store.quota_override(owner).await?.map_or(config.quotas, |o| o.over(&config.quotas));
    let used = store.quota_use(owner, now).await?;
    let standing = |limit, used, period: Option<Period>| QuotaStanding { limit, used, resets_in: period.map(|p| now.seconds_to_next(p)) };
    Ok(UsageReport {
        from,
        to,
        group_by,
        currency: "USD",
        groups: groups.into_iter().map(|(key, totals)| Group { key, totals }).collect(),
        totals,
        quotas: QuotaStandings {
            // Places may include replies whose writer died; they are freed at the next claim that needs them.
            active_replies: standing(limits.active_replies, used.slots.len() as u64, None),
            requests_per_minute: standing(limits.requests_per_minute, used.requests_this_minute, Some(Period::Minute)),
            tokens_per_day: standing(limits.tokens_per_day, used.tokens_today, Some(Period::Day)),
            tokens_per_month: standing(limits.tokens_per_month, used.tokens_this_month, Some(Period::Month)),
        },
    })
}

/// Adds one ledger row, and its cost, to `t`.
fn add(t: &mut Totals, row: &LedgerEntry, config: &Config) {
    let p = &config.prices;
    t.replies += row.replies;
    t.prompt_tokens += row.prompt_tokens;
    t.completion_tokens += row.completion_tokens;
    t.thinking_tokens += row.thinking_tokens;
    t.total_tokens += row.prompt_tokens + row.completion_tokens;
    t.generation_ms += row.generation_ms;
    t.read_units += row.read_units;
    t.write_units += row.write_units;
    if let Some(price) = p.model(&row.model) {
        let cost = (row.prompt_tokens as f64 * price.input_per_million + row.completion_tokens as f64 * price.output_per_million) / 1e6;
        t.cost.model = Some(t.cost.model.unwrap_or(0.0) + cost);
    }
    let gb_seconds = row.generation_ms as f64 / 1000.0 * p.function_memory_mb as f64 / 1024.0;
    t.cost.lambda += gb_seconds * p.lambda_gb_second + row.replies as f64 * p.lambda_million_requests / 1e6;
    t.cost.dynamodb += (row.read_units * p.dynamodb_million_reads + row.write_units * p.dynamodb_million_writes) / 1e6;
    t.cost.total = t.cost.model.unwrap_or(0.0) + t.cost.lambda + t.cost.dynamodb;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_defaults_to_this_month_and_is_bounded() {
        let now = Timestamp::parse("2026-11-25T10:00:00.000Z").unwrap();
        let (from, to, by) = period(None, None, None, now).unwrap();
        assert_eq!((from.as_str(), to.as_str(), by), ("2026-11-01", "2026-11-25", GroupBy::Day));
        assert!(period(Some("2026-11-26"), Some("2026-11-25"), None, now).is_err());
        assert!(period(Some("2024-01-01"), None, None, now).is_err(), "over a year");
        assert!(period(Some("yesterday"), None, None, now).is_err());
        assert!(period(None, None, Some("owner"), now).is_err());
        assert_eq!(period(None, None, Some("model"), now).unwrap().2, GroupBy::Model);
    }

    #[test]
    fn costs_follow_the_prices() {
        let vars = std::collections::HashMap::from([("LLMCHAT_MODEL_PRICES", "hosted/*=1:2")]);
        let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        let row = LedgerEntry {
            model: "hosted/m".into(),
            replies: 1,
            prompt_tokens: 1_000_000,
            completion_tokens: 500_000,
            generation_ms: 4_000,
            read_units: 1e6,
            write_units: 2e6,
            ..LedgerEntry::default()
        };
        let mut t = Totals::default();
        add(&mut t, &row, &config);
        assert_eq!(t.cost.model, Some(2.0));
        let gb_s = 4.0 * 0.25;
        assert!((t.cost.lambda - (gb_s * 0.000_013_333_4 + 0.2 / 1e6)).abs() < 1e-12);
        assert!((t.cost.dynamodb - (0.125 + 2.0 * 0.625)).abs() < 1e-9);
        assert!((t.cost.total - (2.0 + t.cost.lambda + t.cost.dynamodb)).abs() < 1e-9);
        let mut free = Totals::default();
        add(&mut free, &LedgerEntry { model: "ollama/m".into(), ..row }, &config);
        assert_eq!(free.cost.model, None, "no price configured for this model");
    }
}
