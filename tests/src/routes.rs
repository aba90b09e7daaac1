//! The route table as the local runtime (llmchat-local) reads it: the
//! workspace's `[workspace.metadata.llmchat.router]` in Cargo.toml. The integration
//! tests route their requests with it, and `tests/api/routes.rs` holds
//! template.yaml's API events and the OpenAPI document to it.

pub use llmchat_local::routes::Route;
use llmchat_local::routes::{self as local, Target};

/// The workspace's router table.
pub fn router() -> Vec<Route> {
    local::parse(include_str!("../../Cargo.toml")).expect("the workspace's router table")
}

/// A path pattern with every parameter written `{}` and every catch-all
/// (`{*file}` in the router, `{file+}` in API Gateway) written `{*}`, and no
/// trailing slash: the same route reads the same in every table.
pub fn canonical(pattern: &str) -> String {
    let segments: Vec<&str> = pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s {
            s if s.starts_with("{*") || s.ends_with("+}") => "{*}",
            s if s.starts_with('{') => "{}",
            s => s,
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// The function the router sends `method path` to, if any: the local
/// runtime's own routing.
pub fn function_for(routes: &[Route], method: &str, path: &str) -> Option<String> {
    match local::route(routes, &method.to_uppercase(), path) {
        Target::Function { function, .. } => Some(function),
        Target::MethodNotAllowed(_) | Target::NotFound => None,
    }
}

/// For a request the router does not route (a method or a deeper path no
/// entry names), the function that serves every method under its first path
/// segment: the integration tests send such requests there, to check that
/// function's own 404 and 405 problems.
pub fn owner_of_prefix<'a>(routes: &'a [Route], path: &str) -> Option<&'a str> {
    let first = |p: &str| p.split('/').find(|s| !s.is_empty()).map(str::to_owned);
    let prefix = first(path)?;
    routes
        .iter()
        .filter(|r| r.method.is_none() && first(&r.path).as_deref() == Some(prefix.as_str()))
        .map(|r| r.function.as_str())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_the_router() {
        let routes = router();
        assert_eq!(function_for(&routes, "POST", "/sessions").as_deref().as_deref(), Some("create-session"));
        assert_eq!(function_for(&routes, "GET", "/sessions").as_deref(), Some("sessions"));
        assert_eq!(function_for(&routes, "PATCH", "/sessions/abc").as_deref(), Some("sessions"));
        assert_eq!(function_for(&routes, "POST", "/sessions/abc/messages").as_deref(), Some("send-message"));
        assert_eq!(function_for(&routes, "POST", "/sessions/abc/messages/stream").as_deref(), Some("stream-reply"));
        assert_eq!(function_for(&routes, "GET", "/docs/index.html").as_deref(), Some("docs"));
        assert_eq!(function_for(&routes, "GET", "/nowhere").as_deref(), None);
        assert_eq!(function_for(&routes, "DELETE", "/sessions").as_deref(), None);
        assert_eq!(owner_of_prefix(&routes, "/sessions"), Some("sessions"));
        assert_eq!(owner_of_prefix(&routes, "/nowhere"), None);
        assert_eq!(canonical("/docs/{file+}"), canonical("/docs/{*file}"));
        assert_eq!(canonical("/sessions/{id}/"), "/sessions/{}");
    }
}
