//! The address-book API in postcard: pushes and pulls, and the sync of a
//! replica (push the outbox, then pull every page), written through to
//! the database after every reply.

use crate::db::Db;
use edge_crdt::api::contacts::{cursor_token, PushPostcard};
use edge_crdt::codec;
use edge_crdt::crdt::contacts::ContactId;
use edge_crdt::kinds::contacts::{Cursor, Outcome, Replica, MAX_PUSH};
use std::time::Duration;

const POSTCARD: &str = "application/x-postcard";

/// Why a request failed: refused (4xx: the server changed nothing), or
/// unreachable (the network, a 5xx).
#[derive(Debug)]
pub enum Failure {
    Refused(u16, String),
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(status, m) => write!(f, "refused ({status}): {m}"),
            Failure::Unreachable(m) => write!(f, "unreachable: {m}"),
        }
    }
}

/// One book on one server.
pub struct Server {
    agent: ureq::Agent,
    api: String,
    /// `$WRITE_TOKEN`, sent with pushes (a deployment may protect the books)
    token: Option<String>,
}

impl Server {
    pub fn new(url: &str, book: &str) -> Server {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        Server {
            agent: ureq::Agent::new_with_config(config),
            api: format!("{}/api/contacts/{book}", url.trim_end_matches('/')),
            token: std::env::var("WRITE_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }

    fn finish(
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Outcome, Failure> {
        let mut res = res.map_err(|e| Failure::Unreachable(e.to_string()))?;
        let status = res.status().as_u16();
        let body = res
            .body_mut()
            .read_to_vec()
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        match status {
            200 => codec::decode(&body, codec::MAX_FRAME)
                .map_err(|e| Failure::Unreachable(format!("a reply that does not decode: {e}"))),
            400..=499 => Err(Failure::Refused(
                status,
                String::from_utf8_lossy(&body).into(),
            )),
            _ => Err(Failure::Unreachable(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }

    /// Pushes `push`.
    pub fn push(&self, push: &PushPostcard) -> Result<Outcome, Failure> {
        let mut req = self
            .agent
            .post(format!("{}/push", self.api))
            .header("content-type", POSTCARD)
            .header("accept", POSTCARD);
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let res = req.send(codec::encode(push));
        Self::finish(res)
    }

    /// A page of the changes after `cursor`, at `node` if given.
    pub fn changes(&self, cursor: &Cursor, node: Option<&str>) -> Result<Outcome, Failure> {
        let mut url = format!(
            "{}/changes?limit=500&cursor={}",
            self.api,
            cursor_token(cursor)
        );
        if let Some(node) = node {
            url.push_str(&format!("&node={node}"));
        }
        Self::finish(self.agent.get(url).header("accept", POSTCARD).call())
    }
}

/// Pushes the outbox, then pulls until no page is left; every reply is
/// stored before the next request.
pub fn sync(server: &Server, replica: &mut Replica, db: &mut Db) -> Result<(), Failure> {
    while let Some(batch) = replica.push(MAX_PUSH) {
        let push = PushPostcard {
            client: batch.client,
            deltas: batch.deltas.clone(),
            cursor: Some(batch.cursor.clone()),
        };
        let before = replica.pending();
        if let Outcome::Pushed { acked, cursor, .. } = server.push(&push)? {
            replica.acknowledged(acked, &batch.cursor, cursor);
        }
        db.save(replica, &[]).map_err(Failure::Unreachable)?;
        if replica.pending() == before {
            break; // acknowledged once the node hears of our earlier pushes
        }
    }
    for _ in 0..1_000 {
        let Outcome::Changes {
            changes,
            cursor,
            more,
            ..
        } = server.changes(replica.cursor(), None)?
        else {
            return Err(Failure::Unreachable(
                "a pull replied with something else".into(),
            ));
        };
        let ids: Vec<ContactId> = changes.iter().map(|c| c.id.clone()).collect();
        replica.pulled(changes, cursor);
        db.save(replica, &ids).map_err(Failure::Unreachable)?;
        if !more {
            break;
        }
    }
    Ok(())
}
