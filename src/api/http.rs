//! An HTTP request as the router reads it, once: the real method, the
//! path, decoded query parameters, the headers the API looks at, the body
//! and the settings it is judged by. No HTTP library types: the Worker
//! fills it in, tests build it by hand.
//!
//! ```
//! use edge_crdt::api::http::{Format, HttpRequest, Method};
//! let req = HttpRequest::new(Method::parse("QUERY"), "/api/counters/a?node=node-2");
//! assert_eq!(req.method, Method::Other("QUERY".into()));
//! assert_eq!(req.query("node"), Some("node-2"));
//! assert_eq!(req.segments(), ["api", "counters", "a"]);
//! assert_eq!(req.format(), Ok(Format::Json));
//! ```

use super::kv::Limits;
use crate::error::{clip, ApiError, ErrorCode};
use serde::de::DeserializeOwned;

/// The content type of postcard bodies.
pub const POSTCARD: &str = "application/x-postcard";

/// An HTTP method, with the names the Worker runtime does not know kept
/// as they came (worker's own enum turns them into GET).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other(String),
}

impl Method {
    /// The method named `text` (case-sensitive, as HTTP methods are).
    pub fn parse(text: &str) -> Method {
        match text {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(clip(other)),
        }
    }

    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }
}

/// How a body (and so its reply) is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, the default
    Json,
    /// `application/x-postcard`: a postcard envelope
    Postcard,
}

impl Format {
    /// The format a `Content-Type` (or `Accept`) header names; absent means JSON.
    pub fn from_content_type(header: Option<&str>) -> Result<Format, ApiError> {
        let Some(header) = header else {
            return Ok(Format::Json);
        };
        let mime = header
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "" | "application/json" => Ok(Format::Json),
            POSTCARD => Ok(Format::Postcard),
            other => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "content type `{}` is not application/json or {POSTCARD}",
                    clip(other)
                ),
            )),
        }
    }

    /// The `Content-Type` of a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Postcard => POSTCARD,
        }
    }
}

/// Settings the API judges requests by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    /// how far ahead of the server clock a client's stamps may be
    pub max_drift_ms: u64,
    /// key and value limits of registers
    pub kv: Limits,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_drift_ms: 60_000,
            kv: Limits::default(),
        }
    }
}

/// One HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// the real method
    pub method: Method,
    /// scheme, host and port (`https://example.com`)
    pub origin: String,
    /// the path, still percent-encoded
    pub path: String,
    /// the query parameters, decoded (one that does not decode, as written)
    pub query: Vec<(String, String)>,
    /// `Content-Type`
    pub content_type: Option<String>,
    /// `Accept`
    pub accept: Option<String>,
    /// `Authorization`
    pub authorization: Option<String>,
    /// `Cache-Control: no-cache` / `no-store`, or `Pragma: no-cache`
    pub no_cache: bool,
    /// the body
    pub body: Vec<u8>,
    /// the server clock, ms
    pub now: u64,
    /// the limits it is judged by
    pub settings: ApiSettings,
}

impl HttpRequest {
    /// A request for `url` (a path, with or without a query), no headers, no body.
    pub fn new(method: Method, url: &str) -> Self {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let query = query.split('#').next().unwrap_or("");
        HttpRequest {
            method,
            origin: String::new(),
            path: path.to_owned(),
            query: parse_query(query),
            content_type: None,
            accept: None,
            authorization: None,
            no_cache: false,
            body: Vec::new(),
            now: 0,
            settings: ApiSettings::default(),
        }
    }

    /// The path's segments, still percent-encoded.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }

    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request carries a body to parse.
    fn has_body(&self) -> bool {
        matches!(self.method, Method::Post | Method::Put)
            || (self.method == Method::Delete && self.content_type.is_some())
    }

    /// The format of the body, and so of the reply; for a request without
    /// a body, the one `Accept` names (JSON when it names another).
    pub fn format(&self) -> Result<Format, ApiError> {
        if self.has_body() {
            Format::from_content_type(self.content_type.as_deref())
        } else {
            Ok(Format::from_content_type(self.accept.as_deref()).unwrap_or(Format::Json))
        }
    }

    /// Whether the body is empty or only white space.
    pub fn body_is_blank(&self) -> bool {
        self.body.iter().all(u8::is_ascii_whitespace)
    }
}

/// `a=1&b=x%20y` as decoded pairs (`+` is a space). A name or value that
/// is not valid percent-encoding stays as written: `%` is in no parameter's
/// syntax, so the route's parser of that parameter refuses it (a 400 that
/// names it) instead of the request going on as if it were absent.
fn parse_query(query: &str) -> Vec<(String, String)> {
    let decoded = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decoded(k), decoded(&v.replace('+', " ")))
        })
        .collect()
}

/// Percent-decodes `s`; `None` when it is not valid percent-encoding of UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A reply to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// the status
    pub status: u16,
    /// `Content-Type`
    pub content_type: &'static str,
    /// the body
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 in `format`.
    pub fn ok(format: Format, body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type: format.content_type(),
            body,
        }
    }

    /// A 200 JSON reply of `value`.
    pub fn json<T: serde::Serialize>(value: &T) -> Reply {
        Reply::ok(Format::Json, serde_json::to_vec(value).unwrap_or_default())
    }

    /// The reply of an error.
    pub fn error(e: &ApiError) -> Reply {
        Reply {
            status: e.status(),
            content_type: "application/json",
            body: e.to_json().into_bytes(),
        }
    }
}

/// Checks a body's size against `max` before it is parsed.
pub fn check_body_size(len: usize, max: usize) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body has {len} bytes, the limit is {max}"),
        ));
    }
    Ok(())
}

/// Parses a JSON body that must be an object: serde's derived
/// `Deserialize` also fills a struct from an array of its fields, which
/// no body of this API is.
pub fn json_object<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    an_object(body, expected)?;
    serde_json::from_slice(body).map_err(|e| bad_json(expected, &e))
}

// Out of line, once, rather than in each body type's `json_object`.
#[inline(never)]
fn an_object(body: &[u8], expected: &str) -> Result<(), ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        Some(_) => Err(bad_json(expected, &"the body is not a JSON object")),
        None => Err(bad_json(expected, &"the body is empty")),
    }
}

#[inline(never)]
fn bad_json(expected: &str, why: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::BadJson, format!("expected {expected}: {why}"))
}

/// Decodes a postcard envelope body.
pub fn postcard_body<T: DeserializeOwned>(
    body: &[u8],
    max: usize,
    expected: &str,
) -> Result<T, ApiError> {
    crate::codec::decode(body, max)
        .map_err(|e| ApiError::new(ErrorCode::BadPostcard, format!("expected {expected}: {e}")))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn query_parameters_decode() {
        let req = HttpRequest::new(Method::Get, "/x?a=1&node=a%2Db+c&bad=%zz#frag");
        assert_eq!(req.query("a"), Some("1"));
        assert_eq!(req.query("node"), Some("a-b c"));
        assert_eq!(
            req.query("bad"),
            Some("%zz"),
            "kept for its parser to refuse"
        );
        assert_eq!(HttpRequest::new(Method::Get, "/x").query("a"), None);
    }

    #[test]
    fn json_bodies_must_be_objects() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct By {
            by: i64,
        }
        assert!(json_object::<By>(b" {\"by\": 5}", "an increment").is_ok());
        for body in [&b"[5]"[..], b"", b"5", b"null"] {
            let e = json_object::<By>(body, "an increment").unwrap_err();
            assert_eq!(e.error, ErrorCode::BadJson, "{body:?}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(Format::from_content_type(None), Ok(Format::Json));
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Ok(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some(POSTCARD)),
            Ok(Format::Postcard)
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain"))
                .unwrap_err()
                .status(),
            415
        );
        let mut get = HttpRequest::new(Method::Get, "/");
        get.accept = Some("text/html".into());
        assert_eq!(
            get.format(),
            Ok(Format::Json),
            "an unknown Accept is answered in JSON"
        );
    }
}
