//! Client errors: a typed code, its HTTP status, and a message that says
//! what was wrong. Every 4xx and 5xx reply of the API is an [`ApiError`]
//! as `{"error": code, "message": text}`.
//!
//! ```
//! use edge_crdt::{ApiError, ErrorCode};
//! let e = ApiError::new(ErrorCode::BadJson, "expected an object");
//! assert_eq!(e.status(), 400);
//! assert_eq!(e.to_json(), r#"{"error":"bad_json","message":"expected an object"}"#);
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ErrorCode {
    // 400: the request is malformed
    BadJson,
    BadPostcard,
    BadName,
    BadKey,
    BadNode,
    BadElement,
    BadBatch,
    BadSince,
    BadValue,
    BadContext,
    BadResolve,
    BadPrefix,
    BadLimit,
    BadCursor,
    BadReplica,
    BadPartition,
    BadPolicy,
    BadFrame,
    ByOutOfRange,
    BadColumn,
    BadId,
    InvalidCursor,
    BadCid,
    BadTime,
    BadDirection,
    // 401, 404, 405, 413, 415, 422, 429
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    BodyTooLarge,
    ValueTooLarge,
    RegisterTooLarge,
    UnsupportedMediaType,
    BadTimestamp,
    RateLimited,
    // 409: the state does not allow it
    AlreadyCreated,
    Overflow,
    TooManySiblings,
    StaleFrame,
    Partitioned,
    NotActive,
    CannotAdd,
    CannotRetire,
    SequenceGap,
    BookFull,
    // 5xx
    Internal,
    HandoffIncomplete,
    Retired,
    NoActiveNode,
    Unavailable,
    Disabled,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            Unauthorized => 401,
            NotFound => 404,
            MethodNotAllowed => 405,
            BodyTooLarge | ValueTooLarge | RegisterTooLarge => 413,
            UnsupportedMediaType => 415,
            BadTimestamp => 422,
            RateLimited => 429,
            AlreadyCreated | Overflow | TooManySiblings | StaleFrame | Partitioned | NotActive
            | CannotAdd | CannotRetire | SequenceGap | BookFull => 409,
            Internal => 500,
            HandoffIncomplete => 502,
            Retired | NoActiveNode | Unavailable | Disabled => 503,
            _ => 400,
        }
    }

    /// The code as the API spells it.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadJson => "bad_json",
            BadPostcard => "bad_postcard",
            BadName => "bad_name",
            BadKey => "bad_key",
            BadNode => "bad_node",
            BadElement => "bad_element",
            BadBatch => "bad_batch",
            BadSince => "bad_since",
            BadValue => "bad_value",
            BadContext => "bad_context",
            BadResolve => "bad_resolve",
            BadPrefix => "bad_prefix",
            BadLimit => "bad_limit",
            BadCursor => "bad_cursor",
            BadReplica => "bad_replica",
            BadPartition => "bad_partition",
            BadPolicy => "bad_policy",
            BadFrame => "bad_frame",
            ByOutOfRange => "by_out_of_range",
            BadColumn => "bad_column",
            BadId => "bad_id",
            InvalidCursor => "invalid_cursor",
            BadCid => "bad_cid",
            BadTime => "bad_time",
            BadDirection => "bad_direction",
            Unauthorized => "unauthorized",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            BodyTooLarge => "body_too_large",
            ValueTooLarge => "value_too_large",
            RegisterTooLarge => "register_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            BadTimestamp => "bad_timestamp",
            RateLimited => "rate_limited",
            AlreadyCreated => "already_created",
            Overflow => "overflow",
            TooManySiblings => "too_many_siblings",
            StaleFrame => "stale_frame",
            Partitioned => "partitioned",
            NotActive => "not_active",
            CannotAdd => "cannot_add",
            CannotRetire => "cannot_retire",
            SequenceGap => "sequence_gap",
            BookFull => "book_full",
            Internal => "internal",
            HandoffIncomplete => "handoff_incomplete",
            Retired => "retired",
            NoActiveNode => "no_active_node",
            Unavailable => "unavailable",
            Disabled => "disabled",
        }
    }
}

/// A client error: a code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// the code, which fixes the status
    pub error: ErrorCode,
    /// what was wrong
    pub message: String,
    /// a 405's allowed methods, sent as the `Allow` header (not in the body)
    #[serde(skip)]
    pub allow: Option<String>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            error,
            message: message.into(),
            allow: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.error.status()
    }

    /// The JSON body: `{"error": code, "message": text}`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.message.len() + 40);
        out.push_str(r#"{"error":""#);
        out.push_str(self.error.as_str());
        out.push_str(r#"","message":"#);
        json_string(&mut out, &self.message);
        out.push('}');
        out
    }

    /// A 404 for a path no route matches.
    pub fn not_found(path: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("no route for {}", clip(path)))
    }

    /// A 405 naming the methods the path allows, in its message and in
    /// [`allow`](Self::allow).
    ///
    /// ```
    /// use edge_crdt::ApiError;
    /// let e = ApiError::method("PATCH", &["GET", "PUT", "DELETE"]);
    /// assert_eq!(e.message, "PATCH is not allowed here; use GET, PUT or DELETE");
    /// assert_eq!(e.allow.as_deref(), Some("GET, PUT, DELETE"));
    /// assert_eq!(e.to_json(), r#"{"error":"method_not_allowed","message":"PATCH is not allowed here; use GET, PUT or DELETE"}"#);
    /// ```
    pub fn method(method: &str, allowed: &[&str]) -> Self {
        let named = match allowed {
            [rest @ .., last] if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => allowed.join(""),
        };
        ApiError {
            allow: Some(allowed.join(", ")),
            ..ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here; use {named}", clip(method)),
            )
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status(),
            self.error.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// At most 64 characters of `s`, for messages that quote client input.
pub fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn codes_spell_as_serde_does_and_messages_escape() {
        for code in [
            ErrorCode::BadJson,
            ErrorCode::ByOutOfRange,
            ErrorCode::NoActiveNode,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let e = ApiError::new(ErrorCode::BadName, "not \"x\"\n\u{1}");
        let back: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back["message"], "not \"x\"\n\u{1}");
        assert_eq!(back["error"], "bad_name");
    }
}
