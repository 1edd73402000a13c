//! Maps and sets as sorted vectors, for the small ones.
//!
//! It is the Worker's size that decides: every `BTreeMap<K, V>` carries its
//! own tree code (kilobytes of wasm each, most of it for removal), and
//! building one by sorting carries a sort per type. These insert one by
//! one, with a binary search, so they are for collections of tens or
//! hundreds of entries: the nodes of a cluster, transfers in flight,
//! subscriptions. [`VecMap::merge_with`] joins two in one linear pass.

use crate::NodeId;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;

/// A map keyed by node, in node order.
pub type NodeMap<V> = VecMap<NodeId, V>;

/// A set of nodes, in order.
pub type NodeSet = VecSet<NodeId>;

/// A map in key order, on a sorted vector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// The empty map.
    pub const fn new() -> Self {
        VecMap(Vec::new())
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// Sets `id`'s value; the old one, if any.
    pub fn insert(&mut self, id: K, value: V) -> Option<V> {
        match self.find(&id) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.0.insert(at, (id, value));
                None
            }
        }
    }

    /// `id`'s value, made by `make` if there is none yet.
    pub fn get_or_insert_with(&mut self, id: K, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.find(&id) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (id, make()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// `id`'s value, the default if there is none yet.
    pub fn get_or_default(&mut self, id: K) -> &mut V
    where
        V: Default,
    {
        self.get_or_insert_with(id, V::default)
    }

    /// `id`'s value.
    pub fn get<Q: Ord + ?Sized>(&self, id: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(id).ok().map(|at| &self.0[at].1)
    }

    /// `id`'s value, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, id: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(id).ok().map(|at| &mut self.0[at].1)
    }

    /// Takes `id` out, with its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, id: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(id).ok().map(|at| self.0.remove(at).1)
    }

    /// Whether `id` has a value.
    pub fn contains_key<Q: Ord + ?Sized>(&self, id: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(id).is_ok()
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The entry with the greatest key, its value to change.
    pub fn last_mut(&mut self) -> Option<(&K, &mut V)> {
        self.0.last_mut().map(|(k, v)| (&*k, v))
    }

    /// The entry with the greatest key at most `key`.
    pub fn last_at_most(&self, key: &K) -> Option<(&K, &V)> {
        let end = self.0.partition_point(|(k, _)| k <= key);
        end.checked_sub(1).map(|at| (&self.0[at].0, &self.0[at].1))
    }

    /// The entries, in key order, with values to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The values, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// Empties the map.
    pub fn clear(&mut self) {
        self.0.clear()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v))
    }

    /// Joins `other` in: a key only there comes in as it is, and `join`
    /// settles a key in both (true if it changed the value). One pass over
    /// both maps, or a search per entry when `other` is much the smaller.
    /// Whether anything changed.
    pub fn merge_with(&mut self, other: &Self, mut join: impl FnMut(&mut V, &V) -> bool) -> bool
    where
        K: Clone,
        V: Clone,
    {
        let mut changed = false;
        if other.0.len() * 16 < self.0.len() {
            for (k, v) in &other.0 {
                match self.find(k) {
                    Ok(at) => changed |= join(&mut self.0[at].1, v),
                    Err(at) => {
                        self.0.insert(at, (k.clone(), v.clone()));
                        changed = true;
                    }
                }
            }
            return changed;
        }
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let mut theirs = other.0.iter().peekable();
        for (k, mut v) in std::mem::take(&mut self.0) {
            while let Some((tk, tv)) = theirs.next_if(|(tk, _)| *tk < k) {
                out.push((tk.clone(), tv.clone()));
                changed = true;
            }
            if let Some((_, tv)) = theirs.next_if(|(tk, _)| *tk == k) {
                changed |= join(&mut v, tv);
            }
            out.push((k, v));
        }
        for (tk, tv) in theirs {
            out.push((tk.clone(), tv.clone()));
            changed = true;
        }
        self.0 = out;
        changed
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = VecMap::new();
        for (id, value) in items {
            map.insert(id, value);
        }
        map
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&(K, V)) -> (&K, &V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<'a, K, V> IntoIterator for &'a mut VecMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter =
        std::iter::Map<std::slice::IterMut<'a, (K, V)>, fn(&mut (K, V)) -> (&K, &mut V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }
}

impl<K: Ord + Borrow<Q>, Q: Ord + ?Sized, V> std::ops::Index<&Q> for VecMap<K, V> {
    type Output = V;
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for the key")
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = VecMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut map = VecMap::new();
                while let Some((id, value)) = a.next_entry()? {
                    map.insert(id, value);
                }
                Ok(map)
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}

/// A set in order, on a sorted vector without repeats.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct VecSet<T>(Vec<T>);

impl<T> Default for VecSet<T> {
    fn default() -> Self {
        VecSet(Vec::new())
    }
}

impl<T: Ord> VecSet<T> {
    /// The empty set.
    pub const fn new() -> Self {
        VecSet(Vec::new())
    }

    /// Adds `id`; false if it is there already.
    pub fn insert(&mut self, id: T) -> bool {
        match self.0.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, id);
                true
            }
        }
    }

    /// Takes `id` out; false if it was not there.
    pub fn remove<Q: Ord + ?Sized>(&mut self, id: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        match self.0.binary_search_by(|t| t.borrow().cmp(id)) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `id` is in the set.
    pub fn contains<Q: Ord + ?Sized>(&self, id: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.0.binary_search_by(|t| t.borrow().cmp(id)).is_ok()
    }

    /// The items, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The items, in order, as a slice.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Keeps the items `keep` names.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.0.retain(keep);
    }
}

impl<T: Ord> FromIterator<T> for VecSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(ids: I) -> Self {
        let mut set = VecSet::new();
        set.extend(ids);
        set
    }
}

impl<'a, T: Ord + Copy + 'a> FromIterator<&'a T> for VecSet<T> {
    fn from_iter<I: IntoIterator<Item = &'a T>>(ids: I) -> Self {
        ids.into_iter().copied().collect()
    }
}

impl<T: Ord> Extend<T> for VecSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id);
        }
    }
}

impl<T> IntoIterator for VecSet<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a VecSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de, T: Ord + Deserialize<'de>> Deserialize<'de> for VecSet<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items<T>(PhantomData<T>);
        impl<'de, T: Ord + Deserialize<'de>> Visitor<'de> for Items<T> {
            type Value = VecSet<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<VecSet<T>, A::Error> {
                let mut set = VecSet::new();
                while let Some(id) = a.next_element()? {
                    set.insert(id);
                }
                Ok(set)
            }
        }
        d.deserialize_seq(Items(PhantomData))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn ids(ns: &[u32]) -> Vec<NodeId> {
        ns.iter().map(|n| NodeId(*n)).collect()
    }

    #[test]
    fn a_node_set_is_sorted_without_repeats_in_every_form() {
        let set: NodeSet = ids(&[3, 1, 3, 2]).into_iter().collect();
        assert_eq!(set.as_slice(), ids(&[1, 2, 3]));
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["node-1","node-2","node-3"]"#);
        let read: NodeSet = serde_json::from_str(r#"["node-3","node-1","node-3"]"#).unwrap();
        assert_eq!(read.as_slice(), ids(&[1, 3]));
        let back: NodeSet = postcard::from_bytes(&postcard::to_allocvec(&read).unwrap()).unwrap();
        assert_eq!(back, read);
        let mut set = read;
        assert!(set.insert(NodeId(2)) && !set.insert(NodeId(2)));
        assert!(set.remove(&NodeId(1)) && !set.remove(&NodeId(1)));
        assert_eq!(set.as_slice(), ids(&[2, 3]));
    }

    #[test]
    fn a_node_map_keeps_node_order_and_the_last_value() {
        let map: NodeMap<&str> = [(NodeId(2), "b"), (NodeId(0), "a"), (NodeId(2), "c")]
            .into_iter()
            .collect();
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [(&NodeId(0), &"a"), (&NodeId(2), &"c")]
        );
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"node-0":"a","node-2":"c"}"#);
        let read: NodeMap<String> = serde_json::from_str(r#"{"node-2":"c","node-0":"a"}"#).unwrap();
        assert_eq!(read.keys().copied().collect::<Vec<_>>(), ids(&[0, 2]));
    }

    #[test]
    fn a_node_map_has_the_postcard_bytes_of_a_btree_map() {
        // Stored causal contexts were written as BTreeMaps: they must read back.
        let tree = std::collections::BTreeMap::from([(NodeId(7), 3u64), (NodeId(1), 9)]);
        let bytes = postcard::to_allocvec(&tree).unwrap();
        let map: NodeMap<u64> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [(&NodeId(1), &9), (&NodeId(7), &3)]
        );
        assert_eq!(postcard::to_allocvec(&map).unwrap(), bytes);
    }

    #[test]
    fn merge_with_joins_in_one_pass_or_by_search() {
        let max = |a: &mut u8, b: &u8| {
            let grew = *b > *a;
            *a = (*a).max(*b);
            grew
        };
        for (ours, theirs) in [(0..40u8, 30..45u8), (0..100, 50..52)] {
            let mut map: VecMap<u8, u8> = ours.clone().map(|k| (k, 1)).collect();
            let other: VecMap<u8, u8> = theirs.clone().map(|k| (k, 2)).collect();
            assert!(map.merge_with(&other, max));
            let expected: Vec<(u8, u8)> = (0..ours.end.max(theirs.end))
                .map(|k| (k, if theirs.contains(&k) { 2 } else { 1 }))
                .collect();
            assert_eq!(map.0, expected);
            assert!(
                !map.merge_with(&other, max),
                "a second merge changes nothing"
            );
        }
    }

    #[test]
    fn a_node_map_changes_in_place() {
        let mut map = NodeMap::new();
        *map.get_or_insert_with(NodeId(4), || 0) += 2;
        *map.get_or_insert_with(NodeId(4), || 0) += 3;
        assert_eq!(map.insert(NodeId(1), 1), None);
        assert_eq!(map.get(&NodeId(4)), Some(&5));
        assert_eq!(map.remove(&NodeId(1)), Some(1));
        map.retain(|_, v| *v > 5);
        assert!(map.is_empty() && !map.contains_key(&NodeId(4)));
    }
}
