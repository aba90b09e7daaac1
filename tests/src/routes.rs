//! The route table as the local runtime (llmchat-local) reads it: the
//! workspace's `[workspace.metadata.llmchat.router]` in Cargo.toml. The integration
//! tests route their requests with it, and `tests/api/routes.rs` holds
//! template.yaml's API events and the OpenAPI document to it.

/// One entry of the router: requests for `path` (with `method`, or any method
/// when `None`) go to the function `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub method: Option<String>,
    pub function: String,
}

/// The workspace's router table.
pub fn router() -> Vec<Route> {
    let text = include_str!("../../Cargo.toml");
    let manifest: toml::Table = text.parse().expect("the workspace Cargo.toml is TOML");
    let table = manifest["workspace"]["metadata"]["llmchat"]["router"].as_table().expect("a router table");
    let mut routes = Vec::new();
    for (path, target) in table {
        match target {
            toml::Value::String(function) => {
                routes.push(Route { path: path.clone(), method: None, function: function.clone() });
            }
            toml::Value::Array(entries) => {
                for entry in entries {
                    routes.push(Route {
                        path: path.clone(),
                        method: Some(entry["method"].as_str().expect("a method").to_uppercase()),
                        function: entry["function"].as_str().expect("a function").to_owned(),
                    });
                }
            }
            other => panic!("router entry {path} is neither a function nor a list: {other}"),
        }
    }
    routes
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

fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, want) in pattern.iter().enumerate() {
        if want.starts_with("{*") {
            return path.len() > i;
        }
        match path.get(i) {
            Some(got) if want.starts_with('{') || got == want => {}
            _ => return false,
        }
    }
    pattern.len() == path.len()
}

/// The function the router sends `method path` to, if any.
pub fn function_for<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<&'a str> {
    routes
        .iter()
        .filter(|r| matches(&r.path, path))
        .find(|r| r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)))
        .map(|r| r.function.as_str())
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
        assert_eq!(function_for(&routes, "POST", "/sessions"), Some("create-session"));
        assert_eq!(function_for(&routes, "GET", "/sessions"), Some("sessions"));
        assert_eq!(function_for(&routes, "PATCH", "/sessions/abc"), Some("sessions"));
        assert_eq!(function_for(&routes, "POST", "/sessions/abc/messages"), Some("send-message"));
        assert_eq!(function_for(&routes, "POST", "/sessions/abc/messages/stream"), Some("stream-reply"));
        assert_eq!(function_for(&routes, "GET", "/docs/index.html"), Some("docs"));
        assert_eq!(function_for(&routes, "GET", "/nowhere"), None);
        assert_eq!(function_for(&routes, "DELETE", "/sessions"), None);
        assert_eq!(owner_of_prefix(&routes, "/sessions"), Some("sessions"));
        assert_eq!(owner_of_prefix(&routes, "/nowhere"), None);
        assert_eq!(canonical("/docs/{file+}"), canonical("/docs/{*file}"));
        assert_eq!(canonical("/sessions/{id}/"), "/sessions/{}");
    }
}
