//! The caller's identity from a request: an API key in `Authorization:
//! Bearer <key>` (checked by [`crate::auth`]), or the claims of an API Gateway
//! authorizer when one sits in front of the functions.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use super::ApiError;
use crate::auth;
use crate::config::AuthMode;
use crate::domain::OwnerId;
use crate::store::ApiKeyRepository;

/// The caller's owner id, or 401.
pub async fn authenticate<R: ApiKeyRepository>(mode: AuthMode, keys: &R, req: &Request) -> Result<OwnerId, ApiError> {
    match mode {
        AuthMode::ApiKey => owner_from_api_key(keys, req).await,
        AuthMode::Authorizer => owner_from_authorizer(req),
    }
}

/// [`authenticate`] while `reads` run: reads whose result is matched with
/// the caller afterwards (a send's, see [`chat::read_for_send`](crate::chat::read_for_send)),
/// so that they need not wait for the key check. A caller that is not
/// authenticated gets its 401 all the same, and nothing read.
pub async fn authenticate_during<R: ApiKeyRepository, F: Future>(
    mode: AuthMode,
    keys: &R,
    req: &Request,
    reads: Option<F>,
) -> Result<(OwnerId, Option<F::Output>), ApiError> {
    let (owner, read) = tokio::join!(authenticate(mode, keys, req), futures::future::OptionFuture::from(reads));
    Ok((owner?, read))
}

async fn owner_from_api_key<R: ApiKeyRepository>(keys: &R, req: &Request) -> Result<OwnerId, ApiError> {
    let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let key = header
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    Ok(auth::verify_key(keys, key).await?)
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use http::Method;

    use super::*;
    use crate::domain::Timestamp;
    use crate::store::ApiKeyRecord;
    use crate::store::dynamo::DynamoStore;
    use crate::testing::{app_with_key, request};

    /// The table's keys, read slowly, saying when a read has answered.
    struct SlowKeys {
        inner: DynamoStore,
        answered: Arc<AtomicBool>,
    }

    impl ApiKeyRepository for SlowKeys {
        async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), crate::store::StoreError> {
            self.inner.put_api_key(key).await
        }
        async fn get_api_key(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, crate::store::StoreError> {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let record = self.inner.get_api_key(key_id).await;
            self.answered.store(true, Ordering::SeqCst);
            record
        }
        async fn revoke_api_key(&self, key_id: &str, at: Timestamp) -> Result<(), crate::store::StoreError> {
            self.inner.revoke_api_key(key_id, at).await
        }
    }

    #[tokio::test]
    async fn reads_go_on_while_the_key_is_checked_and_a_bad_key_still_gets_401() {
        let (app, key) = app_with_key("alice").await;
        let answered = Arc::new(AtomicBool::new(false));
        let keys = SlowKeys { inner: app.store.clone(), answered: answered.clone() };
        let read = || async { answered.load(Ordering::SeqCst) };

        let req = request(Method::POST, "/sessions/x/messages", Some(&key), None);
        let (owner, key_read_first) = authenticate_during(AuthMode::ApiKey, &keys, &req, Some(read())).await.unwrap();
        assert_eq!(owner.as_str(), "alice");
        assert_eq!(key_read_first, Some(false), "the reads ran before the key's read had answered");

        answered.store(false, Ordering::SeqCst);
        let last = if key.ends_with('A') { 'B' } else { 'A' };
        let forged = format!("{}{last}", &key[..key.len() - 1]);
        let req = request(Method::POST, "/sessions/x/messages", Some(&forged), None);
        let refused = authenticate_during(AuthMode::ApiKey, &keys, &req, Some(read())).await;
        assert!(matches!(refused, Err(ApiError::Unauthorized)), "{refused:?}");
        let none = authenticate_during(AuthMode::ApiKey, &keys, &req, None::<std::future::Ready<()>>).await;
        assert!(matches!(none, Err(ApiError::Unauthorized)));
    }
}
