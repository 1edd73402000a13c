//! When an adapter writes a batch of client requests' storage effects.
//!
//! A request **arrives** when it reaches the node, **joins** the open
//! batch once its effects are ready, or **leaves** without writing (it was
//! passed on, or failed). A batch is written as soon as every request that
//! arrived before the batch opened has joined or left. So the requests
//! that reach a node together are written in one transaction, with no
//! timer to wait for, and a request that arrives after the batch opened
//! can join it but never holds it open: a steady stream of requests
//! cannot starve it.
//!
//! ```
//! use edge_crdt::engine::Barrier;
//! let mut barrier = Barrier::default();
//! let (a, b) = (barrier.arrive(), barrier.arrive());
//! assert!(!barrier.join(a)); // b arrived first: wait for it
//! assert!(barrier.join(b)); // now write, and answer both
//! barrier.written();
//! ```

/// A request's place in the arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// The arrivals a node's open batch waits for.
#[derive(Debug, Default)]
pub struct Barrier {
    /// the newest ticket handed out
    newest: u64,
    /// arrivals that have neither joined nor left, oldest first
    pending: Vec<Ticket>,
    /// the newest arrival the open batch waits for (`None`: no batch open)
    cutoff: Option<Ticket>,
}

impl Barrier {
    /// A request arrives: its ticket.
    pub fn arrive(&mut self) -> Ticket {
        self.newest += 1;
        let ticket = Ticket(self.newest);
        self.pending.push(ticket);
        ticket
    }

    /// `ticket` joins the open batch, opening one if there is none:
    /// whether the batch may be written now.
    pub fn join(&mut self, ticket: Ticket) -> bool {
        self.forget(ticket);
        self.cutoff.get_or_insert(Ticket(self.newest));
        self.ready()
    }

    /// `ticket` leaves without joining (a no-op if it joined already):
    /// whether the open batch may be written now.
    pub fn leave(&mut self, ticket: Ticket) -> bool {
        self.forget(ticket) && self.cutoff.is_some() && self.ready()
    }

    /// The open batch was written; the next join opens another.
    pub fn written(&mut self) {
        self.cutoff = None;
    }

    /// Whether a batch is open.
    pub fn is_open(&self) -> bool {
        self.cutoff.is_some()
    }

    fn forget(&mut self, ticket: Ticket) -> bool {
        match self.pending.iter().position(|t| *t == ticket) {
            Some(at) => {
                self.pending.remove(at);
                true
            }
            None => false,
        }
    }

    fn ready(&self) -> bool {
        match (self.cutoff, self.pending.first()) {
            (Some(cutoff), Some(oldest)) => *oldest > cutoff,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_alone_is_written_at_once() {
        let mut barrier = Barrier::default();
        let a = barrier.arrive();
        assert!(barrier.join(a));
    }

    #[test]
    fn a_batch_waits_for_every_request_that_arrived_before_it_opened() {
        let mut barrier = Barrier::default();
        let (a, b, c) = (barrier.arrive(), barrier.arrive(), barrier.arrive());
        assert!(!barrier.join(b));
        assert!(!barrier.join(a));
        assert!(barrier.join(c));
    }

    #[test]
    fn a_request_that_arrives_later_does_not_hold_the_batch_open() {
        let mut barrier = Barrier::default();
        let (a, b) = (barrier.arrive(), barrier.arrive());
        assert!(!barrier.join(a));
        let late = barrier.arrive();
        assert!(barrier.join(b), "`late` arrived after the batch opened");
        barrier.written();
        assert!(barrier.join(late), "the next batch takes it");
    }

    #[test]
    fn a_late_request_may_join_the_open_batch() {
        let mut barrier = Barrier::default();
        let (a, b) = (barrier.arrive(), barrier.arrive());
        assert!(!barrier.join(a));
        let late = barrier.arrive();
        assert!(!barrier.join(late), "b is still on its way");
        assert!(barrier.join(b));
    }

    #[test]
    fn a_request_that_leaves_releases_the_batch() {
        let mut barrier = Barrier::default();
        let (a, b) = (barrier.arrive(), barrier.arrive());
        assert!(!barrier.join(a));
        assert!(barrier.leave(b));
        assert!(!barrier.leave(b), "leaving twice releases nothing");
        assert!(!barrier.leave(a), "a joined: its leaving is a no-op");
    }

    #[test]
    fn leaving_with_no_batch_open_writes_nothing() {
        let mut barrier = Barrier::default();
        let a = barrier.arrive();
        assert!(!barrier.leave(a));
        assert!(!barrier.is_open());
    }

    #[test]
    fn a_written_batch_closes() {
        let mut barrier = Barrier::default();
        let a = barrier.arrive();
        assert!(barrier.join(a));
        assert!(barrier.is_open());
        barrier.written();
        assert!(!barrier.is_open());
    }
}
