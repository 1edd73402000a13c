//! A small blocking HTTP client for the cluster's JSON API.

use serde_json::Value as Json;
use std::time::Duration;

/// A failed request: refused (a 4xx: nothing was written) or uncertain
/// (transport error, timeout, 5xx: a write may have been stored).
#[derive(Debug)]
pub enum Failure {
    Refused(u16, String),
    Uncertain(String),
}

impl Failure {
    pub fn text(&self) -> &str {
        match self {
            Failure::Refused(_, s) | Failure::Uncertain(s) => s,
        }
    }
}

pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    /// A client of `base` whose requests give up after `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(timeout))
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            base: base.to_owned(),
        }
    }

    pub fn get(&self, path: &str) -> Result<Json, Failure> {
        let res = self
            .agent
            .get(self.url(path))
            .header("accept", "application/json")
            .call();
        finish(path, res)
    }

    /// A PUT, with `token` as a bearer token if given.
    pub fn put(&self, path: &str, body: &Json, token: Option<&str>) -> Result<Json, Failure> {
        send_json(path, self.agent.put(self.url(path)), body, token)
    }

    /// A POST, with `token` as a bearer token if given.
    pub fn post(&self, path: &str, body: &Json, token: Option<&str>) -> Result<Json, Failure> {
        send_json(path, self.agent.post(self.url(path)), body, token)
    }

    /// A GET of an event stream: its body, read as it arrives.
    pub fn get_stream(&self, path: &str) -> Result<ureq::BodyReader<'static>, String> {
        let res = self
            .agent
            .get(self.url(path))
            .header("accept", "text/event-stream")
            .call()
            .map_err(|e| format!("{path}: {e}"))?;
        if res.status().as_u16() != 200 {
            return Err(format!("{path}: {}", res.status()));
        }
        Ok(res.into_body().into_reader())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The first `n` characters of `s`, with `…` when cut.
pub fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Sends `body` as JSON on `req`, with `token` as a bearer token if given.
fn send_json(
    path: &str,
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    body: &Json,
    token: Option<&str>,
) -> Result<Json, Failure> {
    let mut req = req.header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    finish(path, req.send(body.to_string()))
}

fn finish(
    path: &str,
    res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Json, Failure> {
    let mut res = res.map_err(|e| Failure::Uncertain(format!("{path}: {e}")))?;
    let status = res.status().as_u16();
    let text = res
        .body_mut()
        .read_to_string()
        .map_err(|e| Failure::Uncertain(format!("{path}: {status}, body: {e}")))?;
    outcome(path, status, &text)
}

/// A reply's JSON, or what kind of failure its status means.
fn outcome(path: &str, status: u16, text: &str) -> Result<Json, Failure> {
    match status {
        200 => serde_json::from_str(text).map_err(|e| {
            Failure::Uncertain(format!(
                "{path}: 200 but not JSON ({e}): {}",
                clip(text, 200)
            ))
        }),
        400..=499 => Err(Failure::Refused(
            status,
            format!("{path}: {status} {}", clip(text, 300)),
        )),
        _ => Err(Failure::Uncertain(format!(
            "{path}: {status} {}",
            clip(text, 300)
        ))),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_status_tells_whether_a_write_may_be_stored() {
        assert_eq!(outcome("/p", 200, r#"{"stamp":5}"#).unwrap()["stamp"], 5);
        match outcome("/p", 200, "<html>") {
            Err(Failure::Uncertain(t)) => assert!(t.starts_with("/p: 200 but not JSON")),
            other => panic!("{other:?}"),
        }
        match outcome("/p", 401, "no") {
            Err(Failure::Refused(401, t)) => assert_eq!(t, "/p: 401 no"),
            other => panic!("{other:?}"),
        }
        for status in [204, 302, 500, 503] {
            assert!(matches!(
                outcome("/p", status, ""),
                Err(Failure::Uncertain(_))
            ));
        }
    }

    #[test]
    fn clip_cuts_long_texts() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ünï", 2), "ün…");
    }
}
