//! The shared pool of elements that the load workers write.

use edge_crdt::crdt::Element;
use edge_crdt::Rng;
use serde_json::{json, Value as Json};
use std::collections::BTreeSet;

/// Each element of the pool with its canonical identity.
pub struct Pool {
    items: Vec<(Json, Element)>,
}

impl Pool {
    /// `size` distinct elements (awkward scalars first, then `e000`, …) in
    /// an order shuffled by `rng`.
    pub fn new(size: usize, rng: &mut Rng) -> Pool {
        let mut values = vec![
            json!(true),
            json!(false),
            json!(""),
            json!("with space"),
            json!("ünïcödé"),
            json!("🐒"),
            json!("quote\" and \\ back"),
            json!("1"),
            json!("true"),
            json!(0.5),
            json!(2.5),
            json!(-7.25),
            json!(0.1),
            json!(1e21),
            json!(123_456_789_012_u64),
            json!(9_007_199_254_740_993_u64),
        ];
        values.extend((-5..30).map(|n: i64| json!(n)));
        let mut n = 0;
        while values.len() < size {
            values.push(json!(format!("e{n:03}")));
            n += 1;
        }
        values.truncate(size);
        let mut items: Vec<(Json, Element)> = Vec::new();
        let mut seen = BTreeSet::new();
        for v in values {
            let e = Element::from_json(&v).expect("the pool holds scalars");
            if seen.insert(e.clone()) {
                items.push((v, e));
            }
        }
        for i in (1..items.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
        Pool { items }
    }

    /// An index: half the time from a hot few, so writers collide.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let hot = self.items.len().min(24) as u64;
        let n = if rng.chance(500) {
            hot
        } else {
            self.items.len() as u64
        };
        rng.below(n) as usize
    }

    /// 1-3 indices, now and then up to 20.
    pub fn batch(&self, rng: &mut Rng) -> Vec<usize> {
        let n = if rng.chance(50) {
            rng.range(4, 20)
        } else {
            rng.range(1, 3)
        };
        (0..n).map(|_| self.pick(rng)).collect()
    }

    pub fn element(&self, i: usize) -> &Element {
        &self.items[i].1
    }

    /// The elements of `indices`.
    pub fn elements(&self, indices: &[usize]) -> Vec<Element> {
        indices.iter().map(|&i| self.element(i).clone()).collect()
    }

    /// How element `i` is written on the wire: integers sometimes as
    /// floats (`3.0`, `-0.0`), which name the same element.
    pub fn spell(&self, i: usize, rng: &mut Rng) -> Json {
        let v = &self.items[i].0;
        match v.as_i64() {
            Some(0) if rng.chance(200) => json!(-0.0),
            Some(n) if n.unsigned_abs() < 1 << 53 && rng.chance(300) => json!(n as f64),
            _ => v.clone(),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn seeded_choices_repeat() {
        let (mut a, mut b) = (Rng::stream(7, 1), Rng::stream(7, 1));
        let (pa, pb) = (Pool::new(200, &mut a), Pool::new(200, &mut b));
        assert_eq!(pa.items, pb.items);
        assert_eq!(pa.items.len(), 200);
        let batches =
            |pool: &Pool, rng: &mut Rng| (0..50).map(|_| pool.batch(rng)).collect::<Vec<_>>();
        assert_eq!(batches(&pa, &mut a), batches(&pb, &mut b));
    }

    #[test]
    fn a_small_pool_keeps_distinct_elements() {
        let pool = Pool::new(5, &mut Rng::new(1));
        assert_eq!(pool.items.len(), 5);
        let mut rng = Rng::new(2);
        for _ in 0..100 {
            assert!(pool.batch(&mut rng).iter().all(|&i| i < 5));
        }
    }

    #[test]
    fn every_spelling_names_the_same_element() {
        let pool = Pool::new(200, &mut Rng::new(3));
        let mut rng = Rng::new(4);
        for i in 0..200 {
            for _ in 0..10 {
                let spelled = Element::from_json(&pool.spell(i, &mut rng));
                assert_eq!(spelled.as_ref(), Some(pool.element(i)));
            }
        }
    }
}
