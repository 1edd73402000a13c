//! The address books' hybrid logical clock: every client (and every server
//! node) has its own, with its own id, and a stamp names its writer, so
//! two writes never carry the same stamp and equal times are broken by the
//! writer's id.
//!
//! A stamp is `(millis, counter, writer)`, ordered in that order. As text
//! (JSON) it is `"<millis>-<counter, 4 hex>-<writer, 16 hex>"`, for
//! example `"1764000000000-0003-9f3c2a1b7d4e5f60"`; as postcard, the three
//! numbers.
//!
//! ```
//! use edge_crdt::crdt::contacts::{ClockId, ContactClock};
//! let mut clock = ContactClock::new(ClockId::client(0x9f3c_2a1b_7d4e_5f60));
//! let a = clock.now(1_000).unwrap();
//! let b = clock.now(999).unwrap(); // the wall clock stepped back
//! assert!(a < b);
//! assert_eq!(b.to_string(), "1000-0001-9f3c2a1b7d4e5f60");
//! assert_eq!(b.to_string().parse(), Ok(b));
//! ```

use crate::crdt::Hlc;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The id of a clock: a server node's (below 2^32) or a client's (2^32 and
/// above).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClockId(pub u64);

impl ClockId {
    /// The clock of server node `node`.
    pub fn server(node: NodeId) -> ClockId {
        ClockId(u64::from(node.0))
    }

    /// A client's clock id from 64 random bits (raised to 2^32 and above).
    pub fn client(random: u64) -> ClockId {
        ClockId(random | 1 << 32)
    }

    /// Whether this is a server node's clock.
    pub fn is_server(self) -> bool {
        self.0 < 1 << 32
    }
}

impl fmt::Display for ClockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A hybrid-logical-clock stamp. Ordered by time, then counter, then writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HlcStamp {
    /// wall-clock milliseconds since the Unix epoch (at least the writer's)
    pub millis: u64,
    /// events within one millisecond
    pub counter: u16,
    /// the clock that made it
    pub writer: ClockId,
}

/// Why a stamp is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampError {
    /// not `<millis>-<counter>-<writer>` with numbers in range (a 400)
    Malformed,
    /// millisecond 0 is no time
    Zero,
    /// the counter went past 0xffff
    CounterOverflow,
    /// further ahead of the receiver's clock than the drift bound
    Ahead {
        /// how far ahead, in milliseconds
        by_ms: u64,
        /// the bound, in milliseconds
        max_drift_ms: u64,
    },
    /// a client's stamp that names a server node's clock
    ServerWriter,
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StampError::Malformed => f.write_str(
                "a timestamp is `<millis>-<counter: 4 hex digits>-<writer: 16 hex digits>`",
            ),
            StampError::Zero => f.write_str("millisecond 0 is not a timestamp"),
            StampError::CounterOverflow => {
                f.write_str("the timestamp's counter is past its maximum, 0xffff")
            }
            StampError::Ahead {
                by_ms,
                max_drift_ms,
            } => write!(
                f,
                "the timestamp is {by_ms} ms ahead of the server clock; at most {max_drift_ms} ms is allowed"
            ),
            StampError::ServerWriter => {
                f.write_str("the timestamp's writer is a server node's id (clients' ids are 2^32 and above)")
            }
        }
    }
}

impl HlcStamp {
    /// The stamp's place on the engine's `u64` clock ([`Hlc`]): its
    /// millisecond, and its counter as far as 10 bits hold it; past the
    /// clock's range (a peer's row may hold any millisecond), its end.
    pub fn engine_stamp(self) -> u64 {
        Hlc::stamp_of(self.millis).saturating_add(u64::from(self.counter).min(Hlc::stamp_of(1) - 1))
    }

    /// Checks a client's stamp against the receiver's wall clock: a time,
    /// at most `max_drift_ms` ahead, written by a client's clock.
    pub fn check(self, wall_ms: u64, max_drift_ms: u64) -> Result<(), StampError> {
        if self.millis == 0 {
            return Err(StampError::Zero);
        }
        let by_ms = self.millis.saturating_sub(wall_ms);
        if by_ms > max_drift_ms {
            return Err(StampError::Ahead {
                by_ms,
                max_drift_ms,
            });
        }
        if self.writer.is_server() {
            return Err(StampError::ServerWriter);
        }
        Ok(())
    }
}

impl fmt::Display for HlcStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:04x}-{}", self.millis, self.counter, self.writer)
    }
}

impl FromStr for HlcStamp {
    type Err = StampError;

    fn from_str(text: &str) -> Result<HlcStamp, StampError> {
        let mut parts = text.split('-');
        let (Some(millis), Some(counter), Some(writer), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StampError::Malformed);
        };
        let digits = |s: &str, hex: bool| {
            !s.is_empty()
                && s.bytes().all(|b| match hex {
                    true => b.is_ascii_hexdigit(),
                    false => b.is_ascii_digit(),
                })
        };
        if !digits(millis, false) || !digits(counter, true) || !digits(writer, true) {
            return Err(StampError::Malformed);
        }
        if counter.len() < 4 || writer.len() != 16 || millis.len() > 16 {
            return Err(StampError::Malformed);
        }
        // The digits are hex: only a value past the counter's range fails.
        let counter = match u64::from_str_radix(counter, 16) {
            Ok(c) if c <= u64::from(u16::MAX) => c as u16,
            _ => return Err(StampError::CounterOverflow),
        };
        Ok(HlcStamp {
            millis: millis.parse().map_err(|_| StampError::Malformed)?,
            counter,
            writer: ClockId(u64::from_str_radix(writer, 16).map_err(|_| StampError::Malformed)?),
        })
    }
}

impl Serialize for HlcStamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            (self.millis, self.counter, self.writer).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for HlcStamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let (millis, counter, writer) = <(u64, u16, ClockId)>::deserialize(d)?;
            Ok(HlcStamp {
                millis,
                counter,
                writer,
            })
        }
    }
}

/// A hybrid logical clock with its own id (Kulkarni et al., 2014): its
/// stamps follow the wall clock, increase strictly, and pass every stamp
/// it observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactClock {
    last: HlcStamp,
}

impl ContactClock {
    /// A clock that has issued and seen nothing.
    pub fn new(id: ClockId) -> ContactClock {
        ContactClock {
            last: HlcStamp {
                millis: 0,
                counter: 0,
                writer: id,
            },
        }
    }

    /// A clock that resumes after `last`, as a client stored it.
    pub fn resume(last: HlcStamp) -> ContactClock {
        ContactClock { last }
    }

    /// Its id.
    pub fn id(&self) -> ClockId {
        self.last.writer
    }

    /// The latest stamp issued or observed, with this clock's id.
    pub fn last(&self) -> HlcStamp {
        self.last
    }

    /// A stamp for a local write: later than every one issued or observed.
    /// Fails, changing nothing, when 65 536 stamps fall in one millisecond.
    pub fn now(&mut self, wall_ms: u64) -> Result<HlcStamp, StampError> {
        let next = if wall_ms > self.last.millis {
            (wall_ms, 0)
        } else {
            let counter = self.last.counter.checked_add(1);
            (
                self.last.millis,
                counter.ok_or(StampError::CounterOverflow)?,
            )
        };
        self.last.millis = next.0;
        self.last.counter = next.1;
        Ok(self.last)
    }

    /// Moves the clock past `remote`, a stamp in data it merges, unless the
    /// stamp is more than `max_drift_ms` ahead of `wall_ms`: then it is
    /// refused and the clock does not move.
    pub fn observe(
        &mut self,
        remote: HlcStamp,
        wall_ms: u64,
        max_drift_ms: u64,
    ) -> Result<(), StampError> {
        let by_ms = remote.millis.saturating_sub(wall_ms);
        if by_ms > max_drift_ms {
            return Err(StampError::Ahead {
                by_ms,
                max_drift_ms,
            });
        }
        self.witness(remote);
        Ok(())
    }

    /// Moves the clock past `remote` with no drift check: a stamp the
    /// server already accepted, in data a client merges.
    pub fn witness(&mut self, remote: HlcStamp) {
        if (remote.millis, remote.counter) > (self.last.millis, self.last.counter) {
            self.last.millis = remote.millis;
            self.last.counter = remote.counter;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn stamp(millis: u64, counter: u16, writer: u64) -> HlcStamp {
        HlcStamp {
            millis,
            counter,
            writer: ClockId(writer),
        }
    }

    #[test]
    fn text_form_round_trips_and_says_what_is_wrong() {
        let s = stamp(1_764_000_000_000, 3, 0x9f3c_2a1b_7d4e_5f60);
        assert_eq!(s.to_string(), "1764000000000-0003-9f3c2a1b7d4e5f60");
        assert_eq!(s.to_string().parse(), Ok(s));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<HlcStamp>(&json).unwrap(), s);
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<HlcStamp>(&bytes).unwrap(), s);
        assert_eq!(
            "1-ffff-0000000100000000"
                .parse::<HlcStamp>()
                .map(|s| s.counter),
            Ok(0xffff)
        );
        assert_eq!(
            "1-10000-0000000100000000".parse::<HlcStamp>(),
            Err(StampError::CounterOverflow)
        );
        assert_eq!(
            "1-0000ffffff-0000000100000000".parse::<HlcStamp>(),
            Err(StampError::CounterOverflow)
        );
        for bad in [
            "",
            "1-0000",
            "1-0000-0000000100000000-1",
            "x-0000-0000000100000000",
            "1-00g0-0000000100000000",
            "1-000-0000000100000000",
            "1-0000-100000000",
            "+1-0000-0000000100000000",
            "99999999999999999-0000-0000000100000000",
        ] {
            assert_eq!(bad.parse::<HlcStamp>(), Err(StampError::Malformed), "{bad}");
        }
    }

    #[test]
    fn ties_break_by_writer_and_check_refuses_what_it_must() {
        assert!(stamp(5, 1, 2) > stamp(5, 1, 1));
        assert!(stamp(5, 2, 1) > stamp(5, 1, 9));
        let client = 1 << 32;
        assert_eq!(stamp(1_000, 0, client).check(1_000, 100), Ok(()));
        assert_eq!(stamp(1_100, 9, client).check(1_000, 100), Ok(()));
        assert_eq!(
            stamp(1_101, 0, client).check(1_000, 100),
            Err(StampError::Ahead {
                by_ms: 101,
                max_drift_ms: 100
            })
        );
        assert_eq!(stamp(0, 1, client).check(1_000, 100), Err(StampError::Zero));
        assert_eq!(
            stamp(10, 0, 7).check(1_000, 100),
            Err(StampError::ServerWriter)
        );
        assert!(ClockId::client(0).0 >= 1 << 32 && !ClockId::client(0).is_server());
        assert!(ClockId::server(NodeId(u32::MAX)).is_server());
    }

    #[test]
    fn the_clock_counts_within_a_millisecond_and_stops_at_overflow() {
        let mut clock = ContactClock::new(ClockId::client(1));
        clock.observe(stamp(10, 0xfffe, 5), 10, 0).unwrap();
        assert_eq!(clock.now(10).unwrap().counter, 0xffff);
        assert_eq!(clock.now(10), Err(StampError::CounterOverflow));
        assert_eq!(clock.last().counter, 0xffff, "unchanged");
        assert_eq!(clock.now(11).unwrap(), stamp(11, 0, clock.id().0));
    }

    #[test]
    fn engine_stamps_follow_the_order() {
        assert!(stamp(2, 0, 1).engine_stamp() > stamp(1, 0xffff, 1).engine_stamp());
        assert_eq!(stamp(1, 5, 1).engine_stamp(), Hlc::stamp_of(1) + 5);
    }

    #[test]
    fn engine_stamps_past_the_clock_saturate() {
        // Found by the fuzzer: this overflowed (a panic in debug; in
        // release a wrapped, tiny stamp that passes the ahead-of-clock check).
        assert_eq!(stamp(u64::MAX, 5, 1).engine_stamp(), u64::MAX);
        assert_eq!(stamp(1 << 54, 1, 1).engine_stamp(), u64::MAX);
    }
}
