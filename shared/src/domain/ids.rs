//! Identities: who owns a session, and session ids read from a path.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::limits::MAX_OWNER_CHARS;
use super::{Invalid, invalid, truncate};

/// Who owns a session: the API key's owner or the authorizer's subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerId(String);

impl OwnerId {
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let ok = !value.is_empty()
            && value.chars().count() <= MAX_OWNER_CHARS
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':' | '|'));
        if ok {
            Ok(OwnerId(value.to_owned()))
        } else {
            Err(invalid(format!(
                "owner must be 1-{MAX_OWNER_CHARS} characters of letters, digits and . _ - @ : |"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session id: a UUID, parsed strictly from the path.
pub fn parse_session_id(value: &str) -> Result<Uuid, Invalid> {
    Uuid::try_parse(value).map_err(|_| invalid(format!("`{}` is not a session id (a UUID)", truncate(value, 64))))
}


