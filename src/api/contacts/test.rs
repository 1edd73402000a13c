use super::*;
use crate::api::http::Method;
use crate::kinds::contacts::MAX_PUSH;

const NOW: u64 = 1_764_000_000_000;

fn post(body: &str) -> HttpRequest {
    let mut req = HttpRequest::new(Method::Post, "/api/contacts/book/push");
    req.body = body.as_bytes().to_vec();
    req.now = NOW;
    req
}

fn delta(fields: &str) -> String {
    let base = [
        ("id", r#""123e4567-e89b-12d3-a456-426614174000""#.to_owned()),
        ("column", r#""name""#.to_owned()),
        ("value", r#""Bob""#.to_owned()),
        ("timestamp", format!(r#""{NOW}-0000-0000000100000001""#)),
        ("seq", "1".to_owned()),
    ];
    let over: Vec<(&str, &str)> = fields
        .split(';')
        .filter(|f| !f.is_empty())
        .filter_map(|f| f.split_once('='))
        .collect();
    let parts: Vec<String> = base
        .iter()
        .map(|(k, v)| {
            let v = over
                .iter()
                .find(|(o, _)| o == k)
                .map_or(v.as_str(), |(_, v)| v);
            format!(r#""{k}": {v}"#)
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn push(deltas: &[String]) -> String {
    format!(
        r#"{{"client": "0000000100000001", "deltas": [{}]}}"#,
        deltas.join(",")
    )
}

#[test]
fn a_push_parses_into_typed_deltas() {
    let Op::Push {
        client,
        deltas,
        cursor,
    } = parse_push(&post(&push(&[delta("")]))).unwrap()
    else {
        panic!()
    };
    assert_eq!(client, ClockId(0x1_0000_0001));
    assert_eq!(
        (deltas[0].column, deltas[0].seq, cursor),
        (Column::Name, 1, None)
    );
    let flag = delta(r#"column="tombstone";value=true"#);
    assert!(parse_push(&post(&push(&[flag]))).is_ok());
    let postcard = PushPostcard {
        client,
        deltas,
        cursor: Some(Cursor::default()),
    };
    let mut req = post("");
    req.body = codec::encode(&postcard);
    req.content_type = Some("application/x-postcard".into());
    assert!(matches!(
        parse_push(&req),
        Ok(Op::Push {
            cursor: Some(_),
            ..
        })
    ));
}

#[test]
fn bad_pushes_are_4xx_that_say_what_was_wrong() {
    let ahead = format!(r#""{}-0000-0000000100000001""#, NOW + 61_000);
    let many: Vec<String> = (1..=MAX_PUSH as u64 + 1)
        .map(|s| delta(&format!("seq={s}")))
        .collect();
    let cases: Vec<(String, ErrorCode, u16)> = vec![
        (push(&[delta(r#"column="age""#)]), ErrorCode::BadColumn, 400),
        (
            push(&[delta(&format!(r#"value="{}""#, "x".repeat(300)))]),
            ErrorCode::BadValue,
            400,
        ),
        (push(&[delta(r#"value=true"#)]), ErrorCode::BadValue, 400),
        (push(&[delta(r#"value=3"#)]), ErrorCode::BadJson, 400),
        (push(&[delta(r#"id="bob""#)]), ErrorCode::BadId, 400),
        (
            push(&[delta(r#"timestamp="yesterday""#)]),
            ErrorCode::BadJson,
            400,
        ),
        (
            push(&[delta(&format!("timestamp={ahead}"))]),
            ErrorCode::BadTimestamp,
            422,
        ),
        (
            push(&[delta(r#"timestamp="5-0000-0000000000000003""#)]),
            ErrorCode::BadTimestamp,
            422,
        ),
        (
            push(&[delta(r#"timestamp="5-10000-0000000100000001""#)]),
            ErrorCode::BadTimestamp,
            422,
        ),
        (push(&many), ErrorCode::BadBatch, 400),
        (push(&[]), ErrorCode::BadBatch, 400),
        (format!("[{}]", delta("")), ErrorCode::BadJson, 400),
        (
            r#"{"client": "xyz", "deltas": []}"#.into(),
            ErrorCode::BadJson,
            400,
        ),
        (
            push(&[delta("")]).replace('}', r#", "extra": 1}"#),
            ErrorCode::BadJson,
            400,
        ),
        (
            push(&[delta("")]).replacen('{', r#"{"cursor": "!!", "#, 1),
            ErrorCode::BadCursor,
            400,
        ),
    ];
    for (body, code, status) in cases {
        let e = parse_push(&post(&body)).unwrap_err();
        assert_eq!(
            (e.error, e.status()),
            (code, status),
            "{body}: {}",
            e.message
        );
        assert!(
            !e.message.contains("HlcStamp") && !e.message.contains("Malformed"),
            "{}",
            e.message
        );
    }
    let ahead = parse_push(&post(&push(&[delta(&format!("timestamp={ahead}"))]))).unwrap_err();
    assert!(
        ahead.message.contains("61000 ms ahead"),
        "{}",
        ahead.message
    );
}

#[test]
fn routes_cursors_and_limits() {
    let token = cursor_token(&Cursor {
        logs: crate::NodeMap::from_iter([(NodeId(2), 7)]),
        snapshot: None,
    });
    assert!(!token.contains(['+', '/', '=']), "{token}");
    assert_eq!(
        parse_cursor(Some(&token)).unwrap().logs.get(&NodeId(2)),
        Some(&7)
    );
    for bad in ["", "AAAA", "####", &"A".repeat(MAX_CURSOR + 1)] {
        if !bad.is_empty() {
            assert_eq!(
                parse_cursor(Some(bad)).unwrap_err().error,
                ErrorCode::BadCursor,
                "{bad}"
            );
        }
    }
    assert_eq!(parse_limit(None), Ok(DEFAULT_PAGE));
    assert_eq!(
        parse_limit(Some("0")).unwrap_err().error,
        ErrorCode::BadLimit
    );
    assert_eq!(parse_limit(Some("5")), Ok(5));
    let route = |method, path: &str| {
        let req = HttpRequest::new(method, path);
        let segments: Vec<&str> = path.split('/').skip(3).collect();
        Contacts::preflight(&req, &segments)
    };
    assert!(route(Method::Post, "/api/contacts/b/push").is_ok());
    assert_eq!(
        route(Method::Get, "/api/contacts/b/push")
            .unwrap_err()
            .status(),
        405
    );
    assert!(route(Method::Get, "/api/contacts/b/changes").is_ok());
    assert_eq!(
        route(Method::Delete, "/api/contacts/b")
            .unwrap_err()
            .status(),
        405
    );
    assert_eq!(
        route(Method::Get, "/api/contacts/b/x/y")
            .unwrap_err()
            .status(),
        404
    );
}
