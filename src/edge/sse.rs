//! Server-sent event streams of a node object: one channel per open
//! stream, by object. A stream whose client went away is noticed on the
//! next push and its subscription ended.

use crate::engine::ObjectId;
use crate::VecMap;
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;
use std::cell::RefCell;
use worker::Response;

#[derive(Default)]
pub(crate) struct Streams {
    open: RefCell<VecMap<ObjectId, Vec<UnboundedSender<Vec<u8>>>>>,
    /// Objects whose streams closed since last asked, once per stream.
    closed: RefCell<Vec<ObjectId>>,
}

impl Streams {
    /// A new stream of `object`'s events, starting with `hello`.
    pub fn open(&self, object: ObjectId, hello: Vec<u8>) -> worker::Result<Response> {
        let (tx, rx) = unbounded::<Vec<u8>>();
        let _ = tx.unbounded_send(hello);
        self.open.borrow_mut().get_or_default(object).push(tx);
        super::event_stream(Box::pin(rx.map(Ok)))
    }

    /// Sends `event` to the streams of `object` (`None`: every stream).
    pub fn push(&self, object: Option<&ObjectId>, event: &[u8]) {
        let mut open = self.open.borrow_mut();
        let mut closed = self.closed.borrow_mut();
        for (o, senders) in open.iter_mut() {
            if object.is_some_and(|object| object != o) {
                continue;
            }
            senders.retain(|tx| {
                let alive = tx.unbounded_send(event.to_vec()).is_ok();
                if !alive {
                    closed.push(o.clone());
                }
                alive
            });
        }
        open.retain(|_, senders| !senders.is_empty());
    }

    /// The objects whose streams closed, one entry per stream.
    pub fn take_closed(&self) -> Vec<ObjectId> {
        std::mem::take(&mut self.closed.borrow_mut())
    }

    /// Ends every stream (a retired node: browsers reconnect elsewhere).
    pub fn close_all(&self) {
        self.open.borrow_mut().clear();
    }
}
