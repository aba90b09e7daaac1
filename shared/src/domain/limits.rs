//! Every bound the API enforces, in one place. The README's limits table and
//! the OpenAPI document (`maxLength`, `maximum`) are generated from or checked
//! against these constants.

/// Largest request body accepted, in bytes. Larger bodies get 413.
pub const MAX_REQUEST_BODY_BYTES: usize = 256 * 1024;
/// Longest session title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest system prompt, in characters.
pub const MAX_SYSTEM_PROMPT_CHARS: usize = 16_000;
/// Longest model name, in characters.
pub const MAX_MODEL_NAME_CHARS: usize = 128;
/// Most metadata entries on one session.
pub const MAX_METADATA_ENTRIES: usize = 32;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// Longest metadata value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 1_024;
/// Most stop sequences in model options.
pub const MAX_STOP_SEQUENCES: usize = 8;
/// Longest stop sequence, in characters.
pub const MAX_STOP_SEQUENCE_CHARS: usize = 64;
/// Page size used when a list request gives no `limit`.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest `limit` a list request may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Longest `cursor` accepted; real cursors are far shorter.
pub const MAX_CURSOR_CHARS: usize = 512;
/// Longest owner id (API-key owner name or authorizer subject).
pub const MAX_OWNER_CHARS: usize = 128;
/// Longest message a client may send, in characters.
pub const MAX_MESSAGE_CHARS: usize = 32_000;
/// Longest `client_message_id` (idempotency key), in characters.
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;
/// Most past messages read (in the one Query of a send) to build the model's context.
pub const MAX_HISTORY_MESSAGES: usize = 200;
/// Longest reply text stored, in bytes: a DynamoDB item holds at most 400 KB.
/// A reply reaching it ends there, with `done_reason` `length`.
pub const MAX_REPLY_BYTES: usize = 300 * 1024;
/// Largest JSON Schema a client may give as `options.format`, in bytes (as compact JSON).
pub const MAX_FORMAT_BYTES: usize = 16 * 1024;
/// Longest backend name (the `backend/` prefix of a model), in characters.
pub const MAX_BACKEND_NAME_CHARS: usize = 32;
/// Most a session's calibration may scale the context estimate by (see
/// `domain::tokens::TokenCalibration`): four times covers a tokenizer that
/// spends a token on every byte, the finest any splits.
pub const MAX_TOKEN_CALIBRATION: u32 = 4;
