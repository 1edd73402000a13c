//! The register oracle: every acknowledged write with its dot, and every
//! acknowledged write and delete with the context it was made with.
//!
//! As a write is acknowledged, its dot must be new, and its delta may cover
//! no acknowledged write that neither its client nor an earlier
//! acknowledged context saw (else that write is lost). Every value a node
//! holds must be an acknowledged write. At the end, every acknowledged
//! write is a live sibling or covered by an acknowledged context; no live
//! sibling is one an acknowledged context covered (a resurrection); and the
//! replicas' context, with the contexts of the tombstones collected, covers
//! every acknowledged write and context (no write or delete lost).

use edge_crdt::crdt::{CausalContext, Dot, MvRegister, Payload};
use edge_crdt::NodeId;
use std::collections::BTreeMap;

/// One acknowledged register write.
#[derive(Clone, Debug)]
pub struct KvWrite {
    pub dot: Dot,
    /// The node that took it.
    pub at: NodeId,
    /// Whether that node's view named it a replica of the key.
    pub replica: bool,
    /// Virtual time of the acknowledgement.
    pub when: u64,
}

/// The acknowledged writes and deletes of one register.
#[derive(Clone, Debug, Default)]
pub struct RegLog {
    pub writes: Vec<KvWrite>,
    /// The payload of each acknowledged write, by its dot.
    pub payloads: BTreeMap<Dot, Payload>,
    /// The union of the contexts of every acknowledged write and delete.
    pub superseded: CausalContext,
    /// Acknowledged deletes with a non-empty context.
    pub deletes: u64,
    /// The contexts of the register's tombstones that were collected: the
    /// replicas may have forgotten these dots.
    pub collected: CausalContext,
}

/// A payload for reports.
pub fn payload_text(p: &Payload) -> String {
    match p {
        Payload::Text(t) => t.clone(),
        Payload::Bytes(b) => format!("{b:?}"),
    }
}

impl KvWrite {
    fn brief(&self) -> String {
        let replica = if self.replica { "a" } else { "not a" };
        format!(
            "{:?}, taken by {} at {} ms, {replica} replica in its view",
            self.dot, self.at, self.when
        )
    }
}

impl RegLog {
    /// Logs an acknowledged delete made with `ctx`.
    pub fn log_delete(&mut self, ctx: &CausalContext) {
        if !ctx.is_empty() {
            self.deletes += 1;
        }
        self.superseded.join(ctx);
    }

    /// Logs an acknowledged write of `payload` made with client context
    /// `ctx`, whose delta carries `delta_ctx`.
    pub fn log_write(
        &mut self,
        write: KvWrite,
        payload: Payload,
        ctx: &CausalContext,
        delta_ctx: &CausalContext,
    ) -> Result<(), String> {
        // The delta may cover only what its client saw, and its own dot.
        let shadowed: Vec<String> = self
            .writes
            .iter()
            .filter(|w| {
                delta_ctx.contains(w.dot)
                    && !ctx.contains(w.dot)
                    && !self.superseded.contains(w.dot)
            })
            .map(KvWrite::brief)
            .collect();
        let dot = write.dot;
        let what = format!(
            "the write of {} (dot {dot:?}, client context {ctx:?})",
            payload_text(&payload)
        );
        if let Some(old) = self.payloads.insert(dot, payload) {
            return Err(format!(
                "{what} reuses the dot of the acknowledged write of {}",
                payload_text(&old)
            ));
        }
        if !shadowed.is_empty() {
            return Err(format!(
                "{what} covers acknowledged writes its client never saw and no acknowledged \
                 context covered: {shadowed:?}; its delta context is {delta_ctx:?}"
            ));
        }
        self.writes.push(write);
        self.superseded.join(ctx);
        Ok(())
    }

    /// The oracle on the register the replicas agree on at the end; the
    /// acknowledged writes live and superseded.
    pub fn check_final(&self, reg: &MvRegister) -> Result<(u64, u64), String> {
        let (mut live, mut superseded) = (0, 0);
        for w in &self.writes {
            let payload = &self.payloads[&w.dot];
            match reg.siblings().find(|(d, _)| **d == w.dot) {
                Some((_, v)) if v.payload == *payload => live += 1,
                Some((_, v)) => {
                    return Err(format!(
                        "{:?} holds {}, acknowledged as {}",
                        w.dot,
                        payload_text(&v.payload),
                        payload_text(payload)
                    ))
                }
                None if self.superseded.contains(w.dot) => superseded += 1,
                None => {
                    return Err(format!(
                        "the acknowledged write of {} ({}) is lost: not live, and no acknowledged \
                         write or delete was made with a context containing it",
                        payload_text(payload),
                        w.brief()
                    ))
                }
            }
            if !reg.context().contains(w.dot) && !self.collected.contains(w.dot) {
                return Err(format!(
                    "the acknowledged write of {} ({}) is outside the context the replicas hold: {:?}",
                    payload_text(payload),
                    w.brief(),
                    reg.context()
                ));
            }
        }
        self.check_contexts(reg)?;
        Ok((live, superseded))
    }

    /// No acknowledged write or delete lost; no live sibling superseded.
    fn check_contexts(&self, reg: &MvRegister) -> Result<(), String> {
        let mut known = reg.context().clone();
        known.join(&self.collected);
        if !known.covers(&self.superseded) {
            return Err(format!(
                "the replicas hold the context {:?}, which with the collected tombstones {:?} \
                 lacks dots of the acknowledged contexts {:?}: a write or delete is lost",
                reg.context(),
                self.collected,
                self.superseded
            ));
        }
        check_held_register(Some(self), reg)?;
        match reg.siblings().find(|(d, _)| self.superseded.contains(**d)) {
            Some((dot, v)) => Err(format!(
                "{} at {dot:?} is live, yet an acknowledged write or delete replaced it (a resurrection)",
                payload_text(&v.payload)
            )),
            None => Ok(()),
        }
    }
}

/// Every value of a register a node holds is an acknowledged write, with
/// the dot and payload it was acknowledged with.
pub fn check_held_register(log: Option<&RegLog>, reg: &MvRegister) -> Result<(), String> {
    match reg
        .siblings()
        .find(|(d, v)| log.and_then(|l| l.payloads.get(*d)) != Some(&v.payload))
    {
        Some((dot, v)) => Err(format!(
            "holds {} at {dot:?}, never acknowledged",
            payload_text(&v.payload)
        )),
        None => Ok(()),
    }
}
