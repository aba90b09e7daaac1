//! One route table: the router the local runtime uses (Cargo.toml),
//! the API events of template.yaml (deployed) and the OpenAPI document list
//! the same routes, with the same methods going to the same functions; and
//! every path of the API answers a CORS preflight, locally and deployed.

use std::collections::BTreeSet;

use llmchat_tests::routes::{Route, canonical, router};
use serde_yaml::Value;

/// Routes served but not API operations: Swagger UI's own files under
/// `/docs/`, the chat page and its files.
const UNDOCUMENTED: &[&str] = &["/docs/{*}", "/chat", "/chat/{*}"];

/// (canonical path, method, function) of every API event in template.yaml.
fn template_routes() -> BTreeSet<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("template.yaml is YAML");
    let mut routes = BTreeSet::new();
    for (_, resource) in doc["Resources"].as_mapping().expect("resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let function = resource["Metadata"]["BuildProperties"]["Binary"].as_str().expect("a function names its binary");
        for (_, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"].as_str() == Some("Api") {
                let props = &event["Properties"];
                routes.insert((
                    canonical(props["Path"].as_str().unwrap()),
                    props["Method"].as_str().unwrap().to_uppercase(),
                    function.to_owned(),
                ));
            }
        }
    }
    routes
}

/// (canonical path, method) of every operation in the OpenAPI document.
fn openapi_routes() -> BTreeSet<(String, String)> {
    let doc = serde_json::to_value(llmchat::http::openapi::document()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if item.get(method).is_some() {
                routes.insert((canonical(path), method.to_uppercase()));
            }
        }
    }
    routes
}

/// The router's function for a template route: by its method, or the path's any-method entry.
fn routed(router: &[Route], path: &str, method: &str) -> Option<String> {
    let at_path: Vec<&Route> = router.iter().filter(|r| canonical(&r.path) == path).collect();
    at_path
        .iter()
        .find(|r| r.method.as_deref() == Some(method))
        .or_else(|| at_path.iter().find(|r| r.method.is_none()))
        .map(|r| r.function.clone())
}

#[test]
fn router_template_and_openapi_list_the_same_routes() {
    let router = router();
    let template = template_routes();
    let openapi = openapi_routes();
    assert!(template.len() >= 10, "template.yaml's API events were read: {template:?}");

    // Every deployed route is routed locally to the same function.
    for (path, method, function) in &template {
        assert_eq!(routed(&router, path, method).as_deref(), Some(function.as_str()), "{method} {path}");
    }
    // Every local route is deployed: each path, and each method named for it.
    let template_paths: BTreeSet<&str> = template.iter().map(|(p, _, _)| p.as_str()).collect();
    for route in &router {
        let path = canonical(&route.path);
        assert!(template_paths.contains(path.as_str()), "{} is routed locally but not deployed", route.path);
        if let Some(method) = &route.method {
            assert!(
                template.contains(&(path.clone(), method.clone(), route.function.clone())),
                "{method} {} goes to {} locally but not when deployed",
                route.path,
                route.function
            );
        }
    }
    // The document describes exactly the deployed operations (a preflight is
    // not one: it answers for every operation of its path).
    let deployed: BTreeSet<(String, String)> = template
        .iter()
        .filter(|(p, m, _)| !UNDOCUMENTED.contains(&p.as_str()) && m != "OPTIONS")
        .map(|(p, m, _)| (p.clone(), m.clone()))
        .collect();
    assert_eq!(openapi, deployed, "OpenAPI operations and template.yaml's API events differ");

    // Every path of the document answers a preflight when deployed, from one
    // of the functions serving it (and, by the first check, locally too).
    let documented: BTreeSet<&str> = openapi.iter().map(|(p, _)| p.as_str()).collect();
    let preflighted: BTreeSet<&str> = template.iter().filter(|(_, m, _)| m == "OPTIONS").map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(preflighted, documented, "the paths with an OPTIONS event in template.yaml");
    for (path, _, function) in template.iter().filter(|(_, m, _)| m == "OPTIONS") {
        assert!(
            template.iter().any(|(p, m, f)| p == path && m != "OPTIONS" && f == function),
            "OPTIONS {path} goes to {function}, which serves nothing else there"
        );
    }
}
