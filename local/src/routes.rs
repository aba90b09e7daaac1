//! The API's routes as the workspace declares them, in Cargo.toml's
//! `[workspace.metadata.llmchat.router]`: which function serves a method on
//! a path. API Gateway gets the same table from template.yaml (a test holds
//! the two together).

use std::collections::HashMap;

/// One entry: requests for the pattern `path` (with `method`, or any method when
/// `None`) go to `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub method: Option<String>,
    pub function: String,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// To this function, with the path's parameters.
    Function { function: String, params: HashMap<String, String> },
    /// The path is served, but not with this method: these are.
    MethodNotAllowed(Vec<String>),
    /// No route has this path.
    NotFound,
}

/// Reads the router table from the text of the workspace's Cargo.toml.
pub fn parse(manifest: &str) -> Result<Vec<Route>, String> {
    let manifest: toml::Table = manifest.parse().map_err(|e| format!("Cargo.toml is not TOML: {e}"))?;
    let table = manifest
        .get("workspace")
        .and_then(|w| w.get("metadata"))
        .and_then(|m| m.get("llmchat"))
        .and_then(|l| l.get("router"))
        .and_then(toml::Value::as_table)
        .ok_or("Cargo.toml has no [workspace.metadata.llmchat.router] table")?;
    let mut routes = Vec::new();
    for (pattern, target) in table {
        match target {
            toml::Value::String(function) => {
                routes.push(Route { path: pattern.clone(), method: None, function: function.clone() })
            }
            toml::Value::Array(entries) => {
                for entry in entries {
                    let field = |name: &str| entry.get(name).and_then(toml::Value::as_str).map(str::to_owned);
                    let (Some(method), Some(function)) = (field("method"), field("function")) else {
                        return Err(format!("router entry {pattern}: every item needs a method and a function"));
                    };
                    routes.push(Route { path: pattern.clone(), method: Some(method.to_uppercase()), function });
                }
            }
            _ => return Err(format!("router entry {pattern} is neither a function nor a list")),
        }
    }
    Ok(routes)
}

/// How well a pattern's segment matched: a fixed segment beats a parameter,
/// which beats a catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    CatchAll,
    Param,
    Fixed,
}

/// Matches `path` against `pattern`: the fit of each segment and the
/// parameters, or `None`.
fn matches(pattern: &str, path: &str) -> Option<(Vec<Fit>, HashMap<String, String>)> {
    let pattern: Vec<&str> = pattern.split('/').skip(1).collect();
    let path: Vec<&str> = path.split('/').skip(1).collect();
    let mut fits = Vec::new();
    let mut params = HashMap::new();
    for (i, segment) in pattern.iter().enumerate() {
        if let Some(name) = segment.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
            let rest = path.get(i..).map(|r| r.join("/")).unwrap_or_default();
            if rest.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), rest);
            fits.push(Fit::CatchAll);
            return Some((fits, params));
        }
        let actual = *path.get(i)?;
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if actual.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), actual.to_owned());
            fits.push(Fit::Param);
        } else if *segment == actual {
            fits.push(Fit::Fixed);
        } else {
            return None;
        }
    }
    (pattern.len() == path.len()).then_some((fits, params))
}

/// Where `method` on `path` goes: the best-fitting pattern's routes decide.
pub fn route(routes: &[Route], method: &str, path: &str) -> Target {
    let mut best: Option<(Vec<Fit>, &str, HashMap<String, String>)> = None;
    for r in routes {
        if let Some((fits, params)) = matches(&r.path, path)
            && best.as_ref().is_none_or(|(b, _, _)| fits > *b)
        {
            best = Some((fits, &r.path, params));
        }
    }
    let Some((_, pattern, params)) = best else { return Target::NotFound };
    let candidates: Vec<&Route> = routes.iter().filter(|r| r.path == pattern).collect();
    let chosen = candidates
        .iter()
        .find(|r| r.method.as_deref() == Some(method))
        .or_else(|| candidates.iter().find(|r| r.method.is_none()));
    match chosen {
        Some(r) => Target::Function { function: r.function.clone(), params },
        None => Target::MethodNotAllowed(candidates.iter().filter_map(|r| r.method.clone()).collect()),
    }
}

/// The functions the table names, each once.
pub fn functions(routes: &[Route]) -> Vec<String> {
    let mut names: Vec<String> = routes.iter().map(|r| r.function.clone()).collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
[workspace.metadata.llmchat.router]
"/sessions" = [
    { method = "POST", function = "create-session" },
    { method = "get", function = "sessions" },
]
"/sessions/{id}" = "sessions"
"/sessions/{id}/messages/stream" = "stream-reply"
"/sessions/{id}/messages/{message_id}/stream" = "stream-reply"
"/sessions/{id}/messages/{message_id}/cancel" = "send-message"
"/docs/" = "docs"
"/docs/{*file}" = "docs"
"#;

    fn to(function: &str, params: &[(&str, &str)]) -> Target {
        Target::Function {
            function: function.to_owned(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn methods_paths_and_parameters_pick_the_function() {
        let routes = parse(TABLE).unwrap();
        assert_eq!(route(&routes, "POST", "/sessions"), to("create-session", &[]));
        assert_eq!(route(&routes, "GET", "/sessions"), to("sessions", &[]));
        assert_eq!(route(&routes, "DELETE", "/sessions/abc"), to("sessions", &[("id", "abc")]));
        assert_eq!(route(&routes, "POST", "/sessions/a/messages/stream"), to("stream-reply", &[("id", "a")]));
        assert_eq!(
            route(&routes, "POST", "/sessions/a/messages/b/cancel"),
            to("send-message", &[("id", "a"), ("message_id", "b")])
        );
        assert_eq!(route(&routes, "GET", "/docs/"), to("docs", &[]));
        assert_eq!(route(&routes, "GET", "/docs/a/b.css"), to("docs", &[("file", "a/b.css")]));
    }

    #[test]
    fn a_fixed_segment_wins_over_a_parameter() {
        let routes = parse(TABLE).unwrap();
        // `stream` fits both `/messages/stream` and nothing else of that length.
        assert_eq!(route(&routes, "GET", "/sessions/x/messages/stream"), to("stream-reply", &[("id", "x")]));
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        let routes = parse(TABLE).unwrap();
        assert_eq!(route(&routes, "DELETE", "/sessions"), Target::MethodNotAllowed(vec!["POST".into(), "GET".into()]));
        assert_eq!(route(&routes, "GET", "/nowhere"), Target::NotFound);
        assert_eq!(route(&routes, "GET", "/sessions//messages/stream"), Target::NotFound);
        assert_eq!(route(&routes, "GET", "/sessions/a/b"), Target::NotFound);
        assert_eq!(route(&routes, "GET", "/docs"), Target::NotFound);
    }

    #[test]
    fn a_table_without_routes_is_an_error() {
        assert!(parse("[workspace]\n").is_err());
        assert!(parse("not toml [").is_err());
        assert!(parse("[workspace.metadata.llmchat.router]\n\"/a\" = [{ method = \"GET\" }]\n").is_err());
    }

    #[test]
    fn every_function_is_listed_once() {
        let routes = parse(TABLE).unwrap();
        assert_eq!(functions(&routes), ["create-session", "docs", "send-message", "sessions", "stream-reply"]);
    }
}
