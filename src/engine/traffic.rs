//! Client traffic: what one node served ([`RequestMeter`]) and how many
//! active nodes the cluster's total calls for ([`Sizing`]). Both are pure:
//! the caller passes the time and the counts.

/// The client requests a node served: a total, and a rate over a sliding
/// window, estimated from two fixed windows (the current one, and the one
/// before it weighted by how much of it the sliding window still covers).
#[derive(Clone, Debug)]
pub struct RequestMeter {
    window_ms: u64,
    /// when the current window started
    start: u64,
    current: u64,
    previous: u64,
    total: u64,
}

impl RequestMeter {
    /// A meter with windows of `window_ms` (at least 1).
    pub fn new(window_ms: u64) -> Self {
        RequestMeter {
            window_ms: window_ms.max(1),
            start: 0,
            current: 0,
            previous: 0,
            total: 0,
        }
    }

    /// Counts one request served at `now`.
    pub fn record(&mut self, now: u64) {
        self.roll(now);
        self.current += 1;
        self.total += 1;
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Requests per second over the `window_ms` before `now`.
    pub fn per_second(&self, now: u64) -> f64 {
        let mut m = self.clone();
        m.roll(now);
        let into = (now.saturating_sub(m.start)) as f64 / m.window_ms as f64;
        let previous = m.previous as f64 * (1.0 - into.min(1.0));
        (previous + m.current as f64) * 1000.0 / m.window_ms as f64
    }

    fn roll(&mut self, now: u64) {
        if now < self.start.saturating_add(self.window_ms) {
            return;
        }
        let windows = (now - self.start) / self.window_ms;
        self.previous = if windows == 1 { self.current } else { 0 };
        self.current = 0;
        self.start += windows * self.window_ms;
    }
}

/// How many active nodes a load calls for: enough that none serves more
/// than `node_rps` requests per second, within `min_nodes..=max_nodes`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizing {
    /// the most requests per second one node should serve
    pub node_rps: f64,
    /// the fewest active nodes (at least 1)
    pub min_nodes: usize,
    /// the most active nodes (at least `min_nodes`)
    pub max_nodes: usize,
}

/// The cluster shrinks only to a size where each node would serve at most
/// this share of `node_rps`: a resize never calls for the opposite one.
pub const SHRINK_BELOW: f64 = 0.7;

impl Sizing {
    /// The number of active nodes for `rps` requests per second, from
    /// `active` now: more as soon as a node would serve over `node_rps`;
    /// fewer only while each would still serve at most [`SHRINK_BELOW`] of
    /// it. Applying the result gives the same result again.
    pub fn recommend(&self, active: usize, rps: f64) -> usize {
        let (lo, hi) = (
            self.min_nodes.max(1),
            self.max_nodes.max(self.min_nodes.max(1)),
        );
        let nodes_for = |per_node: f64| {
            if rps <= 0.0 || per_node <= 0.0 {
                0
            } else {
                let n = (rps / per_node).ceil();
                if n >= hi as f64 {
                    hi
                } else {
                    n as usize
                }
            }
        };
        let grow = nodes_for(self.node_rps);
        let shrink = nodes_for(self.node_rps * SHRINK_BELOW);
        let wanted = if grow > active {
            grow
        } else if shrink < active {
            shrink
        } else {
            active
        };
        wanted.clamp(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_a_window_then_forgets_it_gradually() {
        let mut m = RequestMeter::new(10_000);
        let t0 = 1_700_000_000_000;
        for i in 0..50 {
            m.record(t0 + i * 100);
        }
        assert_eq!(m.total(), 50);
        let start = t0 - t0 % 10_000;
        // All 50 in the current window: 5 per second.
        assert_eq!(m.per_second(start + 9_999), 5.0);
        // Half-way into the next window, half of them still count.
        assert_eq!(m.per_second(start + 15_000), 2.5);
        assert_eq!(m.per_second(start + 20_000), 0.0);
        assert_eq!(m.per_second(start + 1_000_000), 0.0);
        assert_eq!(m.total(), 50);
    }

    #[test]
    fn a_request_after_a_quiet_window_starts_from_zero() {
        let mut m = RequestMeter::new(1_000);
        for t in 0..10 {
            m.record(t);
        }
        m.record(5_500);
        assert_eq!(m.per_second(5_500), 1.0);
        assert_eq!(m.total(), 11);
    }

    #[test]
    fn the_size_follows_the_load_within_its_bounds() {
        let s = Sizing {
            node_rps: 100.0,
            min_nodes: 3,
            max_nodes: 8,
        };
        assert_eq!(s.recommend(4, 0.0), 3, "idle: the minimum");
        assert_eq!(s.recommend(4, 401.0), 5, "a node would serve over 100/s");
        assert_eq!(s.recommend(4, 400.0), 4);
        assert_eq!(s.recommend(4, 211.0), 4, "3 nodes would serve over 70/s");
        assert_eq!(s.recommend(4, 210.0), 3);
        assert_eq!(s.recommend(4, 1e12), 8, "never over the maximum");
        assert_eq!(s.recommend(12, 790.0), 8, "over the maximum: back to it");
        assert_eq!(s.recommend(12, 250.0), 4, "and fewer when the load allows");
        assert_eq!(s.recommend(1, 0.0), 3, "under the minimum: up to it");
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod laws {
        use super::*;
        use proptest::prelude::*;

        fn sizing() -> impl Strategy<Value = Sizing> {
            (1u32..=1_000, 0usize..=10, 0usize..=20).prop_map(|(rps, min, max)| Sizing {
                node_rps: f64::from(rps),
                min_nodes: min,
                max_nodes: max,
            })
        }

        proptest! {
            #[test]
            fn sizes_stay_in_bounds_and_carry_the_load(
                s in sizing(), active in 0usize..=30, rps in 0.0f64..50_000.0,
            ) {
                let n = s.recommend(active, rps);
                let (lo, hi) = (s.min_nodes.max(1), s.max_nodes.max(s.min_nodes.max(1)));
                prop_assert!((lo..=hi).contains(&n));
                if n < hi {
                    prop_assert!(rps <= s.node_rps * n as f64 * (1.0 + 1e-9), "{n} nodes for {rps}/s");
                }
            }

            #[test]
            fn a_resize_does_not_call_for_another(
                s in sizing(), active in 0usize..=30, rps in 0.0f64..50_000.0,
            ) {
                let n = s.recommend(active, rps);
                prop_assert_eq!(s.recommend(n, rps), n);
            }

            #[test]
            fn after_a_shrink_the_load_may_grow_by_two_fifths_before_a_growth(
                s in sizing(), active in 0usize..=30, rps in 0.0f64..50_000.0,
            ) {
                let n = s.recommend(active, rps);
                if n < active {
                    prop_assert_eq!(s.recommend(n, rps * 1.4), n);
                }
            }

            #[test]
            fn more_load_never_calls_for_fewer_nodes(
                s in sizing(), active in 0usize..=30, a in 0.0f64..50_000.0, b in 0.0f64..50_000.0,
            ) {
                let (low, high) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(s.recommend(active, low) <= s.recommend(active, high));
            }
        }
    }
}
