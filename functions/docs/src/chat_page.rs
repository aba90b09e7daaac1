//! The chat page for end users, `GET /chat`: one HTML page, its style sheet
//! and its scripts, written for this project and compiled into the binary
//! (nothing is fetched from another host, nothing is built at build time).
//! The page calls the API on its own origin, under the same prefix.

use lambda_http::Body;

/// One file of the page: its name under `chat/`, content type and text.
pub struct PageFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub text: &'static str,
}

/// The page itself, served at `/chat` (its files load relative to it, so the
/// page works behind any prefix, such as an API Gateway stage).
pub const PAGE: PageFile = PageFile { name: "", content_type: "text/html; charset=utf-8", text: include_str!("../chat/index.html") };

/// The files the page loads, served at `/chat/<name>`.
pub const FILES: &[PageFile] = &[
    PageFile { name: "chat.css", content_type: "text/css; charset=utf-8", text: include_str!("../chat/chat.css") },
    PageFile { name: "chat.js", content_type: "text/javascript; charset=utf-8", text: include_str!("../chat/chat.js") },
    PageFile { name: "markdown.js", content_type: "text/javascript; charset=utf-8", text: include_str!("../chat/markdown.js") },
];

/// What the page may do: scripts and styles from its own files only (no
/// inline script, no `on…=` attribute, whatever a message holds), requests to
/// its own origin only, and no framing by other sites.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The file for the path segments after `chat`, if there is one.
pub fn file(rest: &[&str]) -> Option<&'static PageFile> {
    match rest {
        [] => Some(&PAGE),
        [name] => FILES.iter().find(|f| f.name == *name),
        _ => None,
    }
}

impl PageFile {
    pub fn body(&self) -> Body {
        Body::Text(self.text.to_owned())
    }
}
