//! `GET /api/kv?prefix=&limit=&cursor=`: every active node lists its
//! registers under the prefix; the router joins the registers of each key,
//! leaves out deleted keys, and ends the page where the first node's own
//! page ended.
//!
//! ```
//! use edge_crdt::api::kv_list::parse_listing;
//! use edge_crdt::api::kv::Limits;
//! let page = parse_listing(Some("user:"), Some("10"), None, &Limits::default()).unwrap();
//! assert_eq!((page.prefix.as_str(), page.limit), ("user:", 10));
//! ```

use super::http::{Format, HttpRequest, Reply};
use super::kv::{check_key, context_text, sibling, Limits, SiblingJson, View, KEY_PREFIX, MAX_KEY};
use super::{CacheUse, Request};
use crate::codec;
use crate::crdt::{CausalContext, Crdt, Dot, MvRegister, Versioned};
use crate::engine::ObjectId;
use crate::error::{ApiError, ErrorCode};
use crate::kinds::register::{NodePage, Op, Outcome, Register};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The paging of `GET /api/kv?prefix=&limit=&cursor=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// keys that start with this
    pub prefix: String,
    /// at most this many keys
    pub limit: usize,
    /// keys after this one (the last key of the previous page)
    pub cursor: Option<String>,
}

/// Most keys in one page.
pub const MAX_PAGE: usize = 1000;

/// Parses the listing parameters, each already percent-decoded.
pub fn parse_listing(
    prefix: Option<&str>,
    limit: Option<&str>,
    cursor: Option<&str>,
    limits: &Limits,
) -> Result<Listing, ApiError> {
    // Keys stored under an earlier, larger limit stay listable.
    let limits = &Limits {
        max_key: MAX_KEY,
        ..*limits
    };
    let prefix = prefix.unwrap_or("").to_owned();
    if !prefix.is_empty() {
        check_key(&prefix, limits).map_err(|e| ApiError::new(ErrorCode::BadPrefix, e.message))?;
    }
    let limit = match limit {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadLimit,
                    format!("`limit` is an integer from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let cursor = cursor
        .map(|c| check_key(c, limits).map(|_| c.to_owned()))
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::BadCursor, e.message))?;
    Ok(Listing {
        prefix,
        limit,
        cursor,
    })
}

/// A listing page merged from every node's page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergedPage {
    /// key names (without `kv:`) and their merged, non-empty registers, in key order
    pub entries: Vec<(String, MvRegister)>,
    /// the last key name looked at, when there may be more keys after it
    pub cursor: Option<String>,
}

/// Merges the pages of several nodes into one page of at most `limit`
/// keys. A node that stopped early (`more`) has not said anything about
/// keys after its last one, so the page ends there: the smallest such
/// last key bounds it and is the cursor. Registers of one key are joined;
/// keys whose joined register is empty (deleted) are left out, so a page
/// may hold fewer than `limit` keys, even none, and still have a cursor.
pub fn merge_pages(pages: &[NodePage], limit: usize) -> MergedPage {
    let bound: Option<&str> = pages
        .iter()
        .filter(|p| p.more)
        .filter_map(|p| p.entries.last().map(|(k, _)| k.as_str()))
        .min();
    // Every register of the page by key, then by node: sorted rather than
    // joined in a `BTreeMap`, whose own instance would cost the Worker
    // kilobytes.
    let mut all: Vec<(&str, usize, &MvRegister)> = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        for (key, register) in &page.entries {
            if bound.is_some_and(|b| key.as_str() > b) || !key.starts_with(KEY_PREFIX) {
                continue;
            }
            all.push((key, n, register));
        }
    }
    crate::heapsort::sort_by(&mut all, |a, b| (a.0, a.1) < (b.0, b.1));
    let name = |key: &str| key[KEY_PREFIX.len()..].to_owned();
    let mut cursor = bound.filter(|b| b.starts_with(KEY_PREFIX)).map(name);
    let mut entries: Vec<(String, MvRegister)> = Vec::new();
    for (i, (key, _, register)) in all.iter().enumerate() {
        if i == 0 || all[i - 1].0 != *key {
            entries.push((name(key), MvRegister::default()));
        }
        entries.last_mut().expect("pushed above").1.merge(register);
    }
    entries.retain(|(_, r)| !r.is_empty());
    if entries.len() > limit {
        entries.truncate(limit);
        cursor = entries.last().map(|(k, _)| k.clone());
    }
    MergedPage { entries, cursor }
}

/// One key of a JSON listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryJson {
    /// the key
    pub key: String,
    /// its live values
    pub siblings: Vec<SiblingJson>,
    /// opaque: the context to write or delete with
    pub context: String,
}

/// `GET /api/kv?prefix=&limit=&cursor=` as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListingView {
    /// the keys of this page, in order
    pub keys: Vec<EntryJson>,
    /// pass it as `cursor` for the next page; `null` on the last page
    pub cursor: Option<String>,
    /// whether some node did not answer (its keys may be missing or older)
    pub partial: bool,
    /// the nodes that did not answer
    pub unreachable: Vec<NodeId>,
}

/// One key of a postcard listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryWire {
    /// the key
    pub key: String,
    /// its live values, each with the dot of its write
    pub siblings: Vec<(Dot, Versioned)>,
    /// every write the merged register has seen
    pub context: CausalContext,
}

/// `GET /api/kv?…` as postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingWire {
    /// the keys of this page, in order
    pub keys: Vec<EntryWire>,
    /// the cursor of the next page
    pub cursor: Option<String>,
    /// whether some node did not answer
    pub partial: bool,
}

/// The reply body of a listing in `format`.
pub fn listing_reply(format: Format, page: &MergedPage, unreachable: &[NodeId]) -> Vec<u8> {
    let partial = !unreachable.is_empty();
    match format {
        Format::Json => serde_json::to_vec(&ListingView {
            keys: page
                .entries
                .iter()
                .map(|(key, r)| EntryJson {
                    key: key.clone(),
                    siblings: r.siblings().map(|(d, v)| sibling(d, v)).collect(),
                    context: context_text(r.context()),
                })
                .collect(),
            cursor: page.cursor.clone(),
            partial,
            unreachable: unreachable.to_vec(),
        })
        .unwrap_or_default(),
        Format::Postcard => codec::encode(&ListingWire {
            keys: page
                .entries
                .iter()
                .map(|(key, r)| EntryWire {
                    key: key.clone(),
                    siblings: r.siblings().map(|(d, v)| (*d, v.clone())).collect(),
                    context: r.context().clone(),
                })
                .collect(),
            cursor: page.cursor.clone(),
            partial,
        }),
    }
}

/// Parses a listing request: the operation every node runs.
pub fn parse(req: &HttpRequest) -> Result<Request<Register>, ApiError> {
    let listing = parse_listing(
        req.query("prefix"),
        req.query("limit"),
        req.query("cursor"),
        &req.settings.kv,
    )?;
    let after = listing
        .cursor
        .as_deref()
        .map(|c| ObjectId::new("kv", c).map_err(|e| ApiError::new(ErrorCode::BadCursor, e.0)))
        .transpose()?;
    let op = Op::List {
        prefix: format!("{KEY_PREFIX}{}", listing.prefix),
        after,
        limit: listing.limit,
    };
    Ok(Request {
        object: None,
        op,
        view: View::listing(listing),
        cache: CacheUse::Skip,
    })
}

/// The reply to a listing from every node's page (`None`: it did not
/// answer); 503 when none did.
pub fn reply(
    format: Format,
    listing: &Listing,
    outcomes: Vec<(NodeId, Option<Outcome>)>,
) -> Result<Reply, ApiError> {
    let mut pages = Vec::new();
    let mut unreachable = Vec::new();
    for (node, outcome) in outcomes {
        match outcome {
            Some(Outcome::Page(page)) => pages.push(page),
            _ => unreachable.push(node),
        }
    }
    if pages.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "no node answered the listing",
        ));
    }
    let page = merge_pages(&pages, listing.limit);
    Ok(Reply::ok(
        format,
        listing_reply(format, &page, &unreachable),
    ))
}

#[cfg(test)]
mod test {
    use super::*;

    fn at(node: NodeId, time: u64) -> crate::crdt::Stamp {
        crate::crdt::Stamp {
            node,
            time,
            holds_own_writes: true,
        }
    }

    fn register(node: u32, text: &str, stamp: u64) -> MvRegister {
        let mut r = MvRegister::default();
        r.merge(&r.write(
            at(NodeId(node), stamp),
            &CausalContext::default(),
            crate::crdt::Payload::Text(text.into()),
        ));
        r
    }

    fn page(keys: &[(&str, &MvRegister)], more: bool) -> NodePage {
        NodePage {
            entries: keys
                .iter()
                .map(|(k, r)| (format!("kv:{k}"), (*r).clone()))
                .collect(),
            more,
        }
    }

    #[test]
    fn pages_merge_registers_drop_tombstones_and_stop_at_the_first_cut() {
        let (a, b) = (register(0, "a", 1), register(1, "b", 2));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut deleted = a.clone();
        deleted.merge(&a.delete(a.context()));
        // Node 0 stopped after "k3"; node 1 has everything up to "k5".
        let pages = [
            page(&[("k1", &a), ("k2", &deleted), ("k3", &a)], true),
            page(&[("k1", &b), ("k2", &a), ("k4", &b), ("k5", &b)], false),
        ];
        let merged = merge_pages(&pages, 10);
        let keys: Vec<&str> = merged.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["k1", "k3"], "k2 is deleted, k4 and k5 are past k3");
        assert_eq!(merged.entries[0].1, ab, "both nodes' writes of k1");
        assert_eq!(merged.cursor.as_deref(), Some("k3"));
        // The limit cuts the page and moves the cursor.
        let merged = merge_pages(&pages, 1);
        assert_eq!(merged.entries.len(), 1);
        assert_eq!(merged.cursor.as_deref(), Some("k1"));
        // Without a cut, every key, and no cursor.
        let done = [page(&[("k4", &b), ("k5", &b)], false), page(&[], false)];
        let merged = merge_pages(&done, 10);
        assert_eq!(merged.entries.len(), 2);
        assert_eq!(merged.cursor, None);
        // Only tombstones up to the cut: an empty page that goes on.
        let gone = [page(&[("k2", &deleted)], true)];
        let merged = merge_pages(&gone, 10);
        assert!(merged.entries.is_empty());
        assert_eq!(merged.cursor.as_deref(), Some("k2"));
    }

    #[test]
    fn listing_parameters() {
        let limits = Limits::default();
        let page = parse_listing(Some("user:"), Some("10"), None, &limits).unwrap();
        assert_eq!((page.prefix.as_str(), page.limit), ("user:", 10));
        let e = parse_listing(None, Some("0"), None, &limits).unwrap_err();
        assert_eq!(e.error, ErrorCode::BadLimit);
        let e = parse_listing(Some("a b"), None, None, &limits).unwrap_err();
        assert_eq!(e.error, ErrorCode::BadPrefix);
    }
}
