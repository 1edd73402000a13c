//! The HTTP API: every request body of every route, JSON and postcard, as
//! the router handles it (`preflight`, then `route`), every URL with its
//! query (names, cursors, limits, times), and the opaque context of a
//! register. A body that parses gives an operation that decodes at the
//! node, and that same operation sent again as a postcard body parses to
//! the same operation: the two formats agree.

use crate::driver::{Target, Verdict};
use crate::props::{round_trip, text};
use crate::seeds::{self, NOW_MS};
use edge_crdt::api::contacts::{cursor_token, ClientId, DeltaJson, PushBody, PushPostcard};
use edge_crdt::api::counter::Increment;
use edge_crdt::api::http::{Format, HttpRequest, Method, POSTCARD};
use edge_crdt::api::kv::{context_text, parse_context, PutWire};
use edge_crdt::api::set::{BiasName, Create, ReplicaJson};
use edge_crdt::api::stream::AppendPostcard;
use edge_crdt::api::{self, Routed};
use edge_crdt::codec::{self, MAX_FRAME};
use edge_crdt::crdt::contacts::ClockId;
use edge_crdt::crdt::stream::IdText;
use edge_crdt::crdt::{CausalContext, Dot, Payload, MAX_COUNTER};
use edge_crdt::engine::{Config, Engine, MemoryStore, ObjectId};
use edge_crdt::kinds::stream::ops::Query;
use edge_crdt::kinds::{contacts, counter, register, set, stream, AnyKind, Call, CATALOG};
use edge_crdt::ApiError;
use edge_crdt::NodeId;
use serde::de::DeserializeOwned;

/// Tokens of JSON bodies.
const JSON: &[&[u8]] = &[
    b"\"by\":",
    b"\"value\":",
    b"\"base64\":",
    b"\"context\":",
    b"\"adds\":",
    b"\"deltas\":",
    b"\"timestamp_ns\":",
    b"\"queries\":",
    b"\"groups\":",
    b",",
    b":",
    b"1.5",
    b"1e2",
    b"\"node-0\"",
];

/// A route with a body, and real bodies in each format.
struct BodyRoute {
    name: &'static str,
    method: Method,
    path: &'static str,
    json: Vec<Vec<u8>>,
    postcard: Vec<Vec<u8>>,
}

pub fn targets() -> Vec<Target> {
    let mut out = Vec::new();
    for r in counter_and_set_routes().into_iter().chain(other_routes()) {
        for (postcard, seeds) in [(false, &r.json), (true, &r.postcard)] {
            if !seeds.is_empty() {
                out.push(body_target(&r, postcard, seeds.clone()));
            }
        }
    }
    out.push(urls());
    out.push(headers());
    out.push(kv_context());
    out
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON")
}

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|t| t.as_bytes().to_vec()).collect()
}

fn route(
    name: &'static str,
    method: Method,
    path: &'static str,
    json: Vec<Vec<u8>>,
    postcard: Vec<Vec<u8>>,
) -> BodyRoute {
    BodyRoute {
        name,
        method,
        path,
        json,
        postcard,
    }
}

fn counter_and_set_routes() -> Vec<BodyRoute> {
    use Method::{Post, Put};
    let elements = seeds::elements();
    let element_json = json(&elements.iter().map(|e| e.to_json()).collect::<Vec<_>>());
    let sets = seeds::sets();
    let set_json = sets.iter().map(|s| json(&ReplicaJson::of(s))).collect();
    let bias = Create {
        bias: BiasName::RemoveWins,
    };
    vec![
        route(
            "counter_increment",
            Post,
            "/api/counters/c/increment",
            texts(&[r#"{"by": 5}"#, r#"{"by":-1000000}"#, "{}", "", "  "]),
            vec![codec::encode(&Increment { by: 7 }), Vec::new()],
        ),
        route(
            "set_create",
            Put,
            "/api/sets/s",
            texts(&[r#"{"bias": "add-wins"}"#, r#"{"bias":"remove-wins"}"#]),
            vec![codec::encode(&bias)],
        ),
        route(
            "set_insert",
            Post,
            "/api/sets/s/insert",
            vec![element_json.clone(), br#"["apple"]"#.to_vec()],
            vec![codec::encode(&elements)],
        ),
        route(
            "set_delete",
            Post,
            "/api/sets/s/delete",
            vec![element_json],
            vec![codec::encode(&elements[..1])],
        ),
        route(
            "set_update",
            Post,
            "/api/sets/s/update",
            set_json,
            sets.iter().map(codec::encode).collect(),
        ),
    ]
}

fn other_routes() -> Vec<BodyRoute> {
    use Method::{Delete, Post, Put};
    let append = AppendPostcard {
        message: b"hi".to_vec().into(),
        timestamp_ns: Some(9),
    };
    let batch = vec![("chat".to_owned(), query()), ("b".into(), Query::default())];
    let groups = r#"{"groups": [["node-0"], ["node-1", "node-2"]]}"#;
    vec![
        route(
            "kv_put",
            Put,
            "/api/kv/user%3A1",
            kv_put_json(),
            kv_put_postcard(),
        ),
        route(
            "kv_delete",
            Delete,
            "/api/kv/k",
            kv_delete_json(),
            seeds::contexts().iter().map(codec::encode).collect(),
        ),
        route(
            "contacts_push",
            Post,
            "/api/contacts/book/push",
            push_json(),
            vec![codec::encode(&push_postcard())],
        ),
        route(
            "stream_append",
            Post,
            "/api/streams/chat/events",
            texts(&[
                r#"{"message": "hi ✓"}"#,
                r#"{"message_base64": "AAE=", "timestamp_ns": "1700000000000000000"}"#,
                r#"{"message": "", "timestamp_ns": 5}"#,
            ]),
            vec![codec::encode(&append)],
        ),
        route(
            "stream_batch",
            Post,
            "/api/streams/query",
            vec![batch_json()],
            vec![codec::encode(&batch)],
        ),
        route(
            "admin_partition",
            Put,
            "/admin/partition",
            texts(&[groups, r#"{"groups": []}"#]),
            Vec::new(),
        ),
    ]
}

fn kv_put_json() -> Vec<Vec<u8>> {
    let context = context_text(&seeds::contexts()[3]);
    let mut out = texts(&[r#"{"value": "hello"}"#, r#"{"value": {"base64": "AAE="}}"#]);
    out.push(format!(r#"{{"value": "x", "context": "{context}"}}"#).into_bytes());
    out
}

fn kv_put_postcard() -> Vec<Vec<u8>> {
    let mut contexts = seeds::contexts();
    // a context at the counters' limit, as a client may send
    let mut last = CausalContext::default();
    last.insert(Dot {
        node: NodeId(0),
        counter: MAX_COUNTER - 1,
    });
    contexts.push(last);
    let payloads = [Payload::Text("hi".into()), Payload::Bytes(vec![0, 255])];
    payloads
        .into_iter()
        .cycle()
        .zip(contexts)
        .map(|(payload, context)| codec::encode(&PutWire { payload, context }))
        .collect()
}

fn kv_delete_json() -> Vec<Vec<u8>> {
    let mut out = texts(&["", "{}", r#"{"context": null}"#]);
    for c in seeds::contexts() {
        out.push(format!(r#"{{"context": "{}"}}"#, context_text(&c)).into_bytes());
    }
    out
}

fn push_json() -> Vec<Vec<u8>> {
    let body = |cursor: Option<String>| PushBody {
        client: ClientId(ClockId::client(7)),
        deltas: seeds::pushed(7).iter().map(DeltaJson::of).collect(),
        cursor,
    };
    let token = cursor_token(&seeds::cursors()[2]);
    vec![json(&body(None)), json(&body(Some(token)))]
}

fn push_postcard() -> PushPostcard {
    PushPostcard {
        client: ClockId::client(7),
        deltas: seeds::pushed(7),
        cursor: Some(seeds::cursors()[1].clone()),
    }
}

fn query() -> Query {
    Query {
        limit: 10,
        cursor: Some(seeds::events()[0].0),
        ..Query::default()
    }
}

fn batch_json() -> Vec<u8> {
    let cursor = seeds::events()[0].0.text();
    format!(
        r#"{{"queries": [{{"topic": "chat", "start_time_ns": "1", "end_time_ns": 99999, "limit": 10, "direction": "desc", "cursor": "{cursor}"}}, {{"topic": "b"}}]}}"#
    )
    .into_bytes()
}

/// A request as the router reads it, at [`NOW_MS`].
fn request(method: Method, url: &str, postcard: bool, body: &[u8]) -> HttpRequest {
    let mut req = HttpRequest::new(method, url);
    req.content_type = Some(
        if postcard {
            POSTCARD
        } else {
            "application/json"
        }
        .into(),
    );
    req.body = body.to_vec();
    req.now = NOW_MS;
    req
}

/// The body of route `r` in one format, as the router handles it.
fn body_target(r: &BodyRoute, postcard: bool, seeds: Vec<Vec<u8>>) -> Target {
    let format = if postcard { "postcard" } else { "json" };
    let (method, path) = (r.method.clone(), r.path);
    Target::new(format!("api/{}.{format}", r.name), seeds, move |body| {
        let req = request(method.clone(), path, postcard, body);
        match api::preflight(&req, false) {
            Ok((max, _)) if body.len() > max => return Verdict::Refused,
            Ok(_) => {}
            Err(e) => return Verdict::Broken(format!("the route is refused: {}", e.message)),
        }
        match api::route(&req, false) {
            Ok(Routed::Kind { kind, parsed, .. }) => match again_in_postcard(&req, &parsed.op) {
                Verdict::Accepted => executes(kind, parsed.object, &parsed.op),
                other => other,
            },
            Ok(_) => Verdict::Accepted,
            Err(e) => error_reply(&e),
        }
    })
    .dict(JSON)
    .alloc_base(32 << 20)
}

/// The operation runs at a node of one, twice: the second time on what
/// the first wrote.
fn executes(kind: &dyn AnyKind, object: Option<ObjectId>, op: &[u8]) -> Verdict {
    let config = Config {
        initial_nodes: 1,
        ..Config::default()
    };
    let mut engine = Engine::start(NodeId(0), config, CATALOG, MemoryStore::default())
        .expect("an engine starts");
    for now in [NOW_MS, NOW_MS + 1] {
        let object = object.clone();
        let _ = kind.run(
            op,
            &mut Call {
                engine: &mut engine,
                object,
                now,
            },
        );
        if let Err(e) = engine.settle() {
            return Verdict::Broken(format!("a memory store failed: {e}"));
        }
    }
    Verdict::Accepted
}

/// A refusal: its reply is JSON that says its code and message.
fn error_reply(e: &ApiError) -> Verdict {
    let expected = serde_json::json!({"error": e.error.as_str(), "message": e.message});
    match serde_json::from_str::<serde_json::Value>(&e.to_json()) {
        Ok(reply) if reply == expected => Verdict::Refused,
        _ => Verdict::Broken(format!("the error reply is not its JSON: {}", e.to_json())),
    }
}

/// The operation `op` the router parsed from `req`, sent again as a
/// postcard body, parses to the same operation (when that body is
/// within the route's limit).
fn again_in_postcard(req: &HttpRequest, op: &[u8]) -> Verdict {
    let body = match postcard_body(req, op) {
        Ok(Some(body)) => body,
        Ok(None) => return Verdict::Accepted,
        Err(why) => return Verdict::Broken(why),
    };
    let again = request(req.method.clone(), &req.path, true, &body);
    if api::preflight(&again, false).is_ok_and(|(max, _)| body.len() > max) {
        // The limit is on bytes: a JSON body may say more within it
        // (`1e20` is the element `100000000000000000000`).
        return Verdict::Accepted;
    }
    match api::route(&again, false) {
        Ok(Routed::Kind { parsed, .. }) if parsed.op == op => Verdict::Accepted,
        Ok(Routed::Kind { parsed, .. }) => Verdict::Broken(format!(
            "as postcard the body parses to another operation: {} then {}",
            crate::driver::hex(op),
            crate::driver::hex(&parsed.op)
        )),
        Ok(_) => Verdict::Broken("as postcard the body routes elsewhere".into()),
        Err(e) => Verdict::Broken(format!("as postcard the body is refused: {}", e.message)),
    }
}

/// The operation the node decodes.
fn op_of<T: DeserializeOwned>(op: &[u8]) -> Result<T, String> {
    codec::decode(op, MAX_FRAME).map_err(|e| format!("the node cannot decode the operation: {e}"))
}

/// The postcard body that asks for operation `op` on `req`'s route, if
/// the operation takes one.
fn postcard_body(req: &HttpRequest, op: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let body = match req.segments().get(1).copied() {
        Some("counters") => match op_of(op)? {
            counter::Op::Increment { by } => Some(codec::encode(&Increment { by })),
            counter::Op::Read => None,
        },
        Some("sets") => match op_of(op)? {
            set::Op::Create { bias } => Some(codec::encode(&Create { bias: bias.into() })),
            set::Op::Insert(e) | set::Op::Delete(e) => Some(codec::encode(&e)),
            set::Op::Update(s) => Some(codec::encode(&s)),
            set::Op::Read => None,
        },
        Some("kv") => match op_of(op)? {
            register::Op::Put { payload, context } => {
                Some(codec::encode(&PutWire { payload, context }))
            }
            register::Op::Delete { context } => {
                Some(context.map_or(Vec::new(), |c| codec::encode(&c)))
            }
            _ => None,
        },
        Some("contacts") => match op_of(op)? {
            contacts::Op::Push {
                client,
                deltas,
                cursor,
            } => Some(codec::encode(&PushPostcard {
                client,
                deltas,
                cursor,
            })),
            _ => None,
        },
        Some("streams") => match op_of(op)? {
            stream::ops::Op::Append {
                message,
                timestamp_ns,
            } => Some(codec::encode(&AppendPostcard {
                message,
                timestamp_ns,
            })),
            stream::ops::Op::Batch(queries) => Some(codec::encode(&queries)),
            _ => None,
        },
        _ => None,
    };
    Ok(body)
}

/// Tokens of URLs.
const URL: &[&[u8]] = &[
    b"%", b"%2F", b"%zz", b"%C3%A9", b"%00", b"?", b"&", b"=", b"/", b"+", b"node-", b"limit=",
    b"cursor=", b"after=", b"since=", b"prefix=", b"_ns=",
];

/// Real URLs of every route, with their parameters.
fn url_seeds() -> Vec<Vec<u8>> {
    let cid = seeds::events()[1].0.text();
    let token = cursor_token(&seeds::cursors()[2]);
    let id = seeds::contact_id(4);
    let urls = [
        "/api/counters/home".to_owned(),
        "/api/counters/a%2Fb/events?node=node-2".into(),
        "/api/sets/s/updates?since=123".into(),
        "/api/kv?prefix=user:&limit=10&cursor=user:5".into(),
        "/api/kv/user%3A42?resolve=lww".into(),
        format!("/api/contacts/book?after={}&limit=5", id.as_str()),
        format!("/api/contacts/book/changes?cursor={token}&limit=100"),
        format!("/api/contacts/book/{}", id.as_str()),
        format!("/api/streams/chat/events?start_time_ns=1&end_time_ns=2&limit=5&direction=desc&cursor={cid}"),
        format!("/api/streams/chat/events/{cid}"),
        "/api/streams/chat/heads".into(),
        "/api/streams/chat/log?after=3&limit=7".into(),
        "/api/streams/chat/export.car".into(),
        "/admin/nodes/node-3".into(),
        "/admin/nodes/node-3/peer".into(),
        "/admin/traffic?node_rps=5&min_nodes=1&max_nodes=9".into(),
        "/bench/naive/push".into(),
    ];
    urls.into_iter().map(String::into_bytes).collect()
}

/// A URL, with every method and no body: routed, or refused.
fn urls() -> Target {
    Target::new("api/urls", url_seeds(), |bytes| {
        let url = text(bytes);
        let mut verdict = Verdict::Refused;
        for method in [Method::Get, Method::Post, Method::Delete, Method::Put] {
            let req = request(method, &url, false, b"");
            if api::preflight(&req, true).is_err() {
                continue;
            }
            match api::route(&req, true) {
                Ok(Routed::Kind { parsed, .. }) => {
                    if let Err(why) = postcard_body(&req, &parsed.op) {
                        return Verdict::Broken(why);
                    }
                    verdict = Verdict::Accepted;
                }
                Ok(_) => verdict = Verdict::Accepted,
                Err(e) => {
                    if let Verdict::Broken(why) = error_reply(&e) {
                        return Verdict::Broken(why);
                    }
                }
            }
        }
        verdict
    })
    .dict(URL)
}

/// The headers the API reads: a method's name, `Content-Type` and
/// `Accept`; a refusal's reply is its JSON.
fn headers() -> Target {
    let seeds = texts(&[
        "application/json; charset=utf-8",
        POSTCARD,
        "Application/JSON",
        "",
    ]);
    Target::new("api/headers", seeds, |bytes| {
        let header = text(bytes);
        let mut req = request(Method::parse(&header), "/api/counters/c", false, b"");
        req.content_type = Some(header.clone());
        req.accept = Some(header.clone());
        let _ = req.format();
        match Format::from_content_type(Some(&header)) {
            Ok(_) => Verdict::Accepted,
            Err(e) => error_reply(&e),
        }
    })
    .dict(&[
        b";",
        b"/",
        b"application/",
        b"x-postcard",
        b"\"",
        b"\\",
        b"\n",
    ])
}

/// A register's opaque context: what decodes re-encodes to the same.
fn kv_context() -> Target {
    let seeds = seeds::contexts()
        .iter()
        .map(|c| context_text(c).into_bytes())
        .collect();
    Target::new("api/kv_context", seeds, |bytes| {
        round_trip(
            bytes,
            |b| parse_context(&text(b)),
            |c| context_text(c).into_bytes(),
        )
    })
}
