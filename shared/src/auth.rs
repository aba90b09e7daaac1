//! Caller identity: API keys (`Authorization: Bearer lck_<key id>_<secret>`)
//! checked against SHA-256 hashes in the table, or the claims of an API
//! Gateway authorizer when one sits in front of the functions.
//!
//! Keys carry 256 random bits, so a fast hash is enough: there is nothing to
//! brute-force. Only the key id (never the secret) may appear in logs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AuthMode;
use crate::domain::{OwnerId, Timestamp};
use crate::error::ApiError;
use crate::store::{ApiKeyRecord, ApiKeyRepository};

const KEY_PREFIX: &str = "lck_";
/// Random bytes in a key id (hex-encoded) and in a secret (base64url-encoded).
const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
/// Longest bearer token considered at all; anything longer is not one of ours.
const MAX_KEY_CHARS: usize = 128;

/// A freshly issued key: `key` is shown once and never stored.
pub struct IssuedKey {
    pub key: String,
    pub record: ApiKeyRecord,
}

pub fn issue_key(owner: OwnerId) -> Result<IssuedKey, getrandom::Error> {
    let mut id = [0u8; KEY_ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let key_id = hex(&id);
    let key = format!("{KEY_PREFIX}{key_id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let record = ApiKeyRecord { key_id, owner, secret_hash: hash_key(&key), created_at: Timestamp::now(), revoked_at: None };
    Ok(IssuedKey { key, record })
}

/// The key id of a well-formed key.
pub fn key_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == KEY_ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (id_ok && !secret.is_empty() && key.len() <= MAX_KEY_CHARS).then_some(id)
}

pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller's owner id, or 401.
pub async fn authenticate<R: ApiKeyRepository>(mode: AuthMode, keys: &R, req: &Request) -> Result<OwnerId, ApiError> {
    match mode {
        AuthMode::ApiKey => owner_from_api_key(keys, req).await,
        AuthMode::Authorizer => owner_from_authorizer(req),
    }
}

async fn owner_from_api_key<R: ApiKeyRepository>(keys: &R, req: &Request) -> Result<OwnerId, ApiError> {
    let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let key = header
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let key_id = key_id_of(key).ok_or(ApiError::Unauthorized)?;
    let record = keys.get_api_key(key_id).await?.ok_or(ApiError::Unauthorized)?;
    let matches: bool = record.secret_hash.as_bytes().ct_eq(hash_key(key).as_bytes()).into();
    if !matches || record.revoked_at.is_some() {
        tracing::info!(key_id, "rejected API key");
        return Err(ApiError::Unauthorized);
    }
    Ok(record.owner)
}

/// The subject an API Gateway authorizer vouched for: a JWT `sub` claim, a
/// Cognito user pool's `claims.sub`, or a Lambda authorizer's `principalId`.
fn owner_from_authorizer(req: &Request) -> Result<OwnerId, ApiError> {
    let subject: Option<String> = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => {
            let fields = &ctx.authorizer.fields;
            fields
                .get("claims")
                .and_then(|c| c.get("sub"))
                .and_then(|s| s.as_str())
                .or_else(|| fields.get("principalId").and_then(|p| p.as_str()))
                .map(str::to_owned)
                .or_else(|| ctx.authorizer.jwt.as_ref().and_then(|j| j.claims.get("sub").cloned()))
        }
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get("sub").cloned()),
        _ => None,
    };
    let subject = subject.ok_or(ApiError::Unauthorized)?;
    OwnerId::parse(&subject).map_err(|_| ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_parse_and_hash_without_the_secret_in_the_record() {
        let issued = issue_key(OwnerId::parse("alice").unwrap()).unwrap();
        assert_eq!(key_id_of(&issued.key), Some(issued.record.key_id.as_str()));
        assert_eq!(issued.record.secret_hash, hash_key(&issued.key));
        let secret = issued.key.rsplit_once('_').map(|(_, s)| s).unwrap_or_default();
        assert!(!format!("{:?}", issued.record).contains(secret));
        let other = issue_key(OwnerId::parse("alice").unwrap()).unwrap();
        assert_ne!(issued.key, other.key);
    }

    #[test]
    fn malformed_keys_have_no_id() {
        for key in ["", "lck_", "lck_zz_secret", "abc_0123456789abcdef_s", "lck_0123456789abcdef_", "lck_0123456789abcdef"] {
            assert_eq!(key_id_of(key), None, "{key}");
        }
        assert_eq!(key_id_of("lck_0123456789abcdef_s_e-c"), Some("0123456789abcdef"));
    }
}
