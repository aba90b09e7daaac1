//! API keys (`lck_<key id>_<secret>`): issued by the admin command, checked
//! against SHA-256 hashes in the table. Reading the key (or an authorizer's
//! claims) from a request is the HTTP layer's part (`http::auth`).
//!
//! Keys carry 256 random bits, so a fast hash is enough: there is nothing to
//! brute-force. Only the key id (never the secret) may appear in logs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{OwnerId, Timestamp};
use crate::store::{ApiKeyRecord, ApiKeyRepository, StoreError};

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
    let key_id = format!("{:016x}", u64::from_be_bytes(id));
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
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// Why a key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No key, a malformed, unknown or revoked key, or no authorizer subject.
    #[error("a valid API key is required")]
    Unauthenticated,
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// The owner of `key`, if it is a valid key that was issued and not revoked.
pub async fn verify_key<R: ApiKeyRepository>(keys: &R, key: &str) -> Result<OwnerId, AuthError> {
    let key_id = key_id_of(key).ok_or(AuthError::Unauthenticated)?;
    let record = keys.get_api_key(key_id).await?.ok_or(AuthError::Unauthenticated)?;
    let matches: bool = record.secret_hash.as_bytes().ct_eq(hash_key(key).as_bytes()).into();
    if !matches || record.revoked_at.is_some() {
        tracing::info!(key_id, "rejected API key");
        return Err(AuthError::Unauthenticated);
    }
    Ok(record.owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_parse_and_hash_without_the_secret_in_the_record() {
        let issued = issue_key(OwnerId::parse("alice").unwrap()).unwrap();
        assert_eq!(key_id_of(&issued.key), Some(issued.record.key_id.as_str()));
        assert_eq!(issued.record.secret_hash, hash_key(&issued.key));
        let secret = issued.key.splitn(3, '_').nth(2).unwrap_or_default();
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
