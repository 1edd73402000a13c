//! Moving a node's storage to today's layout, on the object's first start
//! with this code. The first SQL layout kept one whole value per key
//! (`kv(key, leaf, state, own)`, leaf digests in `leaves`) and the node's
//! membership, partition and clock floor as key-value pairs; each key
//! becomes an object with one row, imported through the engine (no gossip:
//! every node imports its own), and the old tables and pairs are dropped.

use super::sql_store::{SqlStore, LAYOUT};
use crate::codec;
use crate::engine::{Config, Engine, StoreError};
use crate::kinds::{v1, CATALOG};
use crate::NodeId;
use worker::{SqlStorageValue as V, Storage};

/// Rows imported between two writes of the batch.
const BATCH: usize = 256;

fn fail(e: StoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

/// The store, in today's layout.
pub(crate) async fn to_current(
    storage: &Storage,
    store: SqlStore,
    id: NodeId,
    config: &Config,
) -> worker::Result<SqlStore> {
    if store.meta("layout").map_err(fail)?.is_some() {
        return Ok(store);
    }
    let tables = store
        .query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('kv', 'leaves')",
            Vec::new(),
        )
        .map_err(fail)?;
    let store = if tables.is_empty() {
        store
    } else {
        from_first_sql_layout(storage, store, id, config).await?
    };
    store
        .set_meta("layout", codec::encode(&LAYOUT))
        .map_err(fail)?;
    Ok(store)
}

async fn from_first_sql_layout(
    storage: &Storage,
    store: SqlStore,
    id: NodeId,
    config: &Config,
) -> worker::Result<SqlStore> {
    for key in ["members", "partition", "clock"] {
        if let Some(bytes) = super::stored_bytes(storage, key).await? {
            store.set_meta(key, bytes).map_err(fail)?;
        }
    }
    let mut engine = Engine::start(id, config.clone(), CATALOG, store).map_err(fail)?;
    let rows = engine
        .store
        .query("SELECT key, state, own FROM kv", Vec::new())
        .map_err(fail)?;
    let (mut moved, mut dropped) = (0, 0);
    for chunk in rows.chunks(BATCH) {
        for row in chunk {
            let (Some(V::String(key)), Some(V::Blob(state))) = (row.first(), row.get(1)) else {
                dropped += 1;
                continue;
            };
            let own = matches!(row.get(2), Some(V::Integer(1)));
            match v1::row(key, state) {
                Ok(Some((object, row, state))) => {
                    engine
                        .prepare(&object, std::slice::from_ref(&row), false)
                        .map_err(fail)?;
                    let _ = engine.node.import(&object, &row, &state, own);
                    moved += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    worker::console_error!("{id}: stored {key} does not decode ({e}); dropped");
                    dropped += 1;
                }
            }
        }
        engine.settle().map_err(fail)?;
    }
    engine
        .store
        .run("DROP TABLE IF EXISTS kv", Vec::new())
        .map_err(fail)?;
    engine
        .store
        .run("DROP TABLE IF EXISTS leaves", Vec::new())
        .map_err(fail)?;
    storage
        .delete_multiple(vec!["members", "partition", "clock", "id"])
        .await?;
    worker::console_log!("{id}: moved {moved} keys to the rows layout ({dropped} dropped)");
    Ok(engine.store)
}
