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

