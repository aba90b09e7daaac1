//! `llmchat-admin`: operator commands run against the configured table
//! (`LLMCHAT_TABLE_NAME`, `DYNAMODB_ENDPOINT` locally).
//!
//! ```text
//! llmchat-admin create-table
//! llmchat-admin issue-key --owner <owner>     # the key is the last line of stdout
//! llmchat-admin revoke-key --key-id <key id>
//! llmchat-admin quota --owner <owner> [--active-replies N] [--requests-per-minute N]
//!               [--tokens-per-day N] [--tokens-per-month N] [--clear]
//!                                             # sets (or shows, or clears) the owner's own quotas
//! llmchat-admin openapi                       # the OpenAPI document as YAML
//! ```

use std::process::ExitCode;

use llmchat::auth;
use llmchat::http::openapi;
use llmchat::config::Config;
use llmchat::domain::{OwnerId, Timestamp};
use llmchat::store::dynamo::{DynamoStore, schema};
use llmchat::domain::QuotaOverride;
use llmchat::store::{ApiKeyRepository, QuotaRepository, StoreError};

const USAGE: &str = "usage: llmchat-admin create-table | issue-key --owner <owner> | revoke-key --key-id <id> \
| quota --owner <owner> [--active-replies N] [--requests-per-minute N] [--tokens-per-day N] [--tokens-per-month N] [--clear] \
| openapi | openapi-3.2";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("llmchat-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let command = args.first().map(String::as_str).ok_or(USAGE)?;
    if command == "openapi" {
        print!("{}", openapi::yaml(&openapi::document()));
        return Ok(());
    }
    if command == "openapi-3.2" {
        print!("{}", openapi::yaml(&openapi::document_3_2()));
        return Ok(());
    }
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let client = DynamoStore::client_for(config.dynamodb_endpoint.as_deref()).await;
    let store = DynamoStore::new(client, config.table_name.clone());
    let storage = |e: StoreError| format!("table {}: {e}", config.table_name);
    match command {
        "create-table" => {
            let created = schema::create_table(store.client(), store.table()).await.map_err(storage)?;
            let verb = if created { "created" } else { "already exists" };
            eprintln!("table {} {verb}", store.table());
        }
        "issue-key" => {
            let owner = OwnerId::parse(&flag(args, "--owner")?).map_err(|e| e.to_string())?;
            let issued = auth::issue_key(owner).map_err(|e| format!("no randomness: {e}"))?;
            store.put_api_key(&issued.record).await.map_err(storage)?;
            eprintln!("issued key {} for owner {}", issued.record.key_id, issued.record.owner);
            println!("{}", issued.key);
        }
        "revoke-key" => {
            let key_id = flag(args, "--key-id")?;
            match store.revoke_api_key(&key_id, Timestamp::now()).await {
                Ok(()) => eprintln!("revoked key {key_id}"),
                Err(StoreError::NotFound) => return Err(format!("no key with id {key_id}")),
                Err(e) => return Err(storage(e)),
            }
        }
        "quota" => {
            let owner = OwnerId::parse(&flag(args, "--owner")?).map_err(|e| e.to_string())?;
            let number = |name: &str| -> Result<Option<u64>, String> {
                match args.iter().position(|a| a == name) {
                    None => Ok(None),
                    Some(_) => flag(args, name)?.parse::<u64>().ok().filter(|n| *n >= 1).map(Some).ok_or_else(|| format!("{name} is a whole number, 1 or more")),
                }
            };
            let given = QuotaOverride {
                active_replies: number("--active-replies")?,
                requests_per_minute: number("--requests-per-minute")?,
                tokens_per_day: number("--tokens-per-day")?,
                tokens_per_month: number("--tokens-per-month")?,
            };
            if args.iter().any(|a| a == "--clear") {
                store.set_quota_override(&owner, None).await.map_err(storage)?;
            } else if given != QuotaOverride::default() {
                // Fields not given keep the owner's own value, if it had one.
                let before = store.quota_override(&owner).await.map_err(storage)?.unwrap_or_default();
                let merged = QuotaOverride {
                    active_replies: given.active_replies.or(before.active_replies),
                    requests_per_minute: given.requests_per_minute.or(before.requests_per_minute),
                    tokens_per_day: given.tokens_per_day.or(before.tokens_per_day),
                    tokens_per_month: given.tokens_per_month.or(before.tokens_per_month),
                };
                store.set_quota_override(&owner, Some(&merged)).await.map_err(storage)?;
            }
            let own = store.quota_override(&owner).await.map_err(storage)?;
            let limits = own.map_or(config.quotas, |o| o.over(&config.quotas));
            eprintln!("quotas of owner {owner} (its own where set, else the deployment's):");
            println!(
                "active_replies={} requests_per_minute={} tokens_per_day={} tokens_per_month={}",
                limits.active_replies, limits.requests_per_minute, limits.tokens_per_day, limits.tokens_per_month
            );
        }
        _ => return Err(USAGE.to_owned()),
    }
    Ok(())
}

fn flag(args: &[String], name: &str) -> Result<String, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| format!("{name} <value> is required\n{USAGE}"))
}
