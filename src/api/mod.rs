//! Untrusted HTTP input, parsed and validated without any HTTP types: the
//! adapter hands in the method, path segments, content type and body bytes
//! and gets back typed requests or an [`ApiError`] to send as a 4xx.

pub mod counter;
pub mod kv;
pub mod set;
pub mod traffic;

use serde::Serialize;
use std::fmt;

/// The largest request body any endpoint accepts.
pub const MAX_BODY: usize = 4096;

/// Longest counter name, in bytes.
pub const MAX_NAME: usize = 128;

/// A client error: an HTTP status and a message that says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// the HTTP status
    #[serde(skip)]
    pub status: u16,
    /// a stable machine-readable code
    pub error: &'static str,
    /// what was wrong, for people
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            message: message.into(),
        }
    }

    /// The JSON body: `{"error": code, "message": text}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message)
    }
}

/// How a request body (and so its response) is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`, the default
    Json,
    /// `application/x-postcard`: a postcard envelope
    Postcard,
}

/// The content type for postcard bodies.
pub const POSTCARD: &str = "application/x-postcard";

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
                415,
                "unsupported_media_type",
                format!(
                    "content type `{}` is not application/json or {POSTCARD}",
                    clip(other)
                ),
            )),
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Postcard => POSTCARD,
        }
    }
}

/// Decodes one percent-encoded path segment and checks it with [`check_name`].
pub fn parse_name(segment: &str) -> Result<String, ApiError> {
    let name = percent_decode(segment)
        .ok_or_else(|| ApiError::new(400, "bad_name", "the name is not valid percent-encoding"))?;
    check_name(&name)?;
    Ok(name)
}

/// Checks a key name: 1 to [`MAX_NAME`] bytes of ASCII letters, digits and `-_.~:/@`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: String| ApiError::new(400, "bad_name", why);
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad(format!(
            "a name has 1 to {MAX_NAME} bytes, this one has {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~:/@".contains(*c)))
    {
        return Err(bad(format!(
            "a name may hold ASCII letters, digits and -_.~:/@, not {c:?}"
        )));
    }
    Ok(())
}

/// The first value of query parameter `name` in `url`, percent-decoded
/// (`None` when absent or not valid UTF-8 after decoding).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

/// Percent-decodes `s`; `None` when it is not valid percent-encoding of UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
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

/// Checks a body's size against `max` before it is parsed.
pub fn check_body_size(len: usize, max: usize) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::new(
            413,
            "body_too_large",
            format!("the body has {len} bytes, the limit is {max}"),
        ));
    }
    Ok(())
}

/// A 405 naming the methods the path allows.
pub fn wrong_method(method: &str, allowed: &str) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{} is not allowed here; use {allowed}", clip(method)),
    )
}

/// A 404 for a path no route matches.
pub fn not_found(path: &str) -> ApiError {
    ApiError::new(404, "not_found", format!("no route for {}", clip(path)))
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_name("home").unwrap(), "home");
        assert_eq!(parse_name("blog%2Fpost-1").unwrap(), "blog/post-1");
        for bad in ["", "a b", "%zz", "%FF", "caf%C3%A9", &"x".repeat(129)] {
            assert_eq!(parse_name(bad).unwrap_err().error, "bad_name", "{bad}");
        }
    }

    #[test]
    fn query_params() {
        let url = "https://x/api/counters/a?x=1&node=node-2#frag";
        assert_eq!(query_param(url, "node").as_deref(), Some("node-2"));
        assert_eq!(query_param(url, "x").as_deref(), Some("1"));
        assert_eq!(query_param(url, "y"), None);
        assert_eq!(
            query_param("https://x/?node=a%2Db+c", "node").as_deref(),
            Some("a-b c")
        );
        assert_eq!(query_param("https://x/", "node"), None);
    }

    #[test]
    fn formats() {
        assert_eq!(Format::from_content_type(None), Ok(Format::Json));
        assert_eq!(
            Format::from_content_type(Some("application/json; charset=utf-8")),
            Ok(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-postcard")),
            Ok(Format::Postcard)
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain"))
                .unwrap_err()
                .status,
            415
        );
    }
}
