//! Which proposals a group has applied, so that a command proposed again (its leader changed
//! or its answer was lost, and the outcome is unknown) takes effect once.
//!
//! Every proposal carries its proposer's node id and a sequence number that node never
//! reuses (numbers start above the clock in microseconds and above anything applied before).
//! A member skips an entry whose (node, sequence) it has applied. The record is replicated
//! state: every member derives it from the same log, writes it with the applied index and
//! sends it inside snapshots, so every member skips exactly the same entries.
//!
//! A node's sequence numbers are applied nearly in order, so the record is a floor (every
//! number at or below it counts as applied) plus a few ranges above it. The floor follows
//! the highest number applied, [`WINDOW`] behind: a proposal is retried for seconds, not
//! for millions of newer proposals.

use std::collections::BTreeMap;

/// How far behind a node's highest applied sequence number a retry is still recognised;
/// anything older counts as applied (so it is skipped, never applied twice).
pub const WINDOW: u64 = 4_000_000;

/// Most separate ranges kept per node above its floor; past it the floor rises to merge
/// the oldest.
const MAX_RANGES: usize = 256;

/// The applied sequence numbers of one proposer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Proposer {
    /// Every sequence number at or below this counts as applied.
    floor: u64,
    /// Applied numbers above the floor: disjoint, sorted, inclusive, not touching.
    ranges: Vec<(u64, u64)>,
}

impl Proposer {
    fn contains(&self, seq: u64) -> bool {
        if seq <= self.floor {
            return true;
        }
        let i = self.ranges.partition_point(|&(_, end)| end < seq);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= seq)
    }

    fn insert(&mut self, seq: u64) {
        if self.contains(seq) {
            return;
        }
        let i = self.ranges.partition_point(|&(_, end)| end < seq);
        let joins_left = i > 0 && self.ranges[i - 1].1 + 1 == seq;
        let joins_right = self.ranges.get(i).is_some_and(|&(start, _)| start == seq + 1);
        match (joins_left, joins_right) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = seq,
            (false, true) => self.ranges[i].0 = seq,
            (false, false) => self.ranges.insert(i, (seq, seq)),
        }
        self.raise_floor();
    }

    fn high(&self) -> u64 {
        self.ranges.last().map_or(self.floor, |&(_, end)| end)
    }

    /// Moves the floor up to [`WINDOW`] behind the highest number, and far enough that at
    /// most [`MAX_RANGES`] ranges remain; ranges at or below it merge into it.
    fn raise_floor(&mut self) {
        let mut floor = self.floor.max(self.high().saturating_sub(WINDOW));
        if self.ranges.len() > MAX_RANGES {
            floor = floor.max(self.ranges[self.ranges.len() - MAX_RANGES - 1].1);
        }
        if floor == self.floor {
            return;
        }
        self.floor = floor;
        self.ranges.retain(|&(_, end)| end > floor);
        if let Some(first) = self.ranges.first_mut() {
            if first.0 <= floor + 1 {
                self.floor = first.1;
                self.ranges.remove(0);
            }
        }
    }
}

/// The applied proposals of one group, by proposer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    proposers: BTreeMap<u64, Proposer>,
}

impl Applied {
    /// True when `node`'s proposal `seq` has been applied (or is too old to tell).
    pub fn contains(&self, node: u64, seq: u64) -> bool {
        self.proposers.get(&node).is_some_and(|p| p.contains(seq))
    }

    /// Records `node`'s proposal `seq` as applied.
    pub fn insert(&mut self, node: u64, seq: u64) {
        self.proposers.entry(node).or_default().insert(seq);
    }

    /// The highest sequence number of `node` recorded (0: none): a restarted node numbers
    /// its proposals above it.
    pub fn high(&self, node: u64) -> u64 {
        self.proposers.get(&node).map_or(0, Proposer::high)
    }

    /// The record as bytes: per proposer its id, floor, range count and ranges, big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.proposers.len() * 24);
        out.extend_from_slice(&(self.proposers.len() as u32).to_be_bytes());
        for (node, p) in &self.proposers {
            out.extend_from_slice(&node.to_be_bytes());
            out.extend_from_slice(&p.floor.to_be_bytes());
            out.extend_from_slice(&(p.ranges.len() as u32).to_be_bytes());
            for (start, end) in &p.ranges {
                out.extend_from_slice(&start.to_be_bytes());
                out.extend_from_slice(&end.to_be_bytes());
            }
        }
        out
    }

    /// Reads [`Applied::encode`]'s bytes; `None` when they are cut short or inconsistent.
    pub fn decode(bytes: &[u8]) -> Option<Applied> {
        let mut r = Reader(bytes);
        let count = r.u32()?;
        let mut proposers = BTreeMap::new();
        for _ in 0..count {
            let node = r.u64()?;
            let floor = r.u64()?;
            let n = r.u32()? as usize;
            let mut ranges = Vec::with_capacity(n.min(MAX_RANGES + 1));
            for i in 0..n {
                let (start, end) = (r.u64()?, r.u64()?);
                // Above the floor, sorted, and apart from the previous range.
                let after = if i == 0 {
                    floor
                } else {
                    ranges.last().map_or(floor, |&(_, e): &(u64, u64)| e.saturating_add(1))
                };
                if start <= after || end < start {
                    return None;
                }
                ranges.push((start, end));
            }
            proposers.insert(node, Proposer { floor, ranges });
        }
        r.0.is_empty().then_some(Applied { proposers })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }
}

/// Marks snapshot data that carries the applied-proposals record before the state
/// machine's own data. Snapshots without it (older nodes) carry the state alone.
const SNAPSHOT_MAGIC: &[u8; 8] = b"FRTDEDU1";

/// A group snapshot: the record, then the state machine's data.
pub fn wrap_snapshot(applied: &Applied, state: &[u8]) -> Vec<u8> {
    let record = applied.encode();
    let mut out = Vec::with_capacity(12 + record.len() + state.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(&record);
    out.extend_from_slice(state);
    out
}

/// Splits [`wrap_snapshot`]'s data into the record and the state machine's data; data
/// without the mark is the state alone, with an empty record.
pub fn unwrap_snapshot(data: &[u8]) -> Result<(Applied, &[u8]), String> {
    let Some(rest) = data.strip_prefix(SNAPSHOT_MAGIC) else { return Ok((Applied::default(), data)) };
    let mut r = Reader(rest);
    let len = r.u32().ok_or("a snapshot's applied-proposals record is cut short")? as usize;
    let (record, state) = r.0.split_at_checked(len).ok_or("a snapshot's applied-proposals record is cut short")?;
    let applied = Applied::decode(record).ok_or("a snapshot's applied-proposals record cannot be decoded")?;
    Ok((applied, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_numbers_stay_one_range_and_retries_are_recognised() {
        let mut a = Applied::default();
        for seq in 100..200 {
            assert!(!a.contains(1, seq));
            a.insert(1, seq);
        }
        assert!(a.contains(1, 150) && !a.contains(1, 200) && !a.contains(2, 150));
        assert_eq!(a.proposers[&1].ranges, vec![(100, 199)]);
        assert_eq!(a.high(1), 199);
    }

    #[test]
    fn the_floor_follows_the_window_and_old_numbers_count_as_applied() {
        let mut a = Applied::default();
        a.insert(1, 10);
        a.insert(1, 10 + WINDOW + 5);
        assert!(a.contains(1, 3), "far behind the newest: treated as applied, never applied twice");
        assert!(a.contains(1, 10 + WINDOW + 5));
        assert!(!a.contains(1, 10 + WINDOW + 4));
        // A restarted node numbers from the clock, far above: its old numbers fall below the floor.
        a.insert(1, 1_700_000_000_000_000);
        assert!(a.proposers[&1].ranges.len() <= 1);
    }

    #[test]
    fn too_many_gaps_raise_the_floor() {
        let mut a = Applied::default();
        for i in 0..(MAX_RANGES as u64 + 10) {
            a.insert(7, 1000 + 2 * i); // every other number: a gap each time
        }
        assert!(a.proposers[&7].ranges.len() <= MAX_RANGES);
        assert!(a.contains(7, 1001), "merged into the floor");
    }

    #[test]
    fn snapshots_carry_the_record_and_old_snapshots_still_restore() {
        let mut a = Applied::default();
        a.insert(1, 5);
        a.insert(3, 9);
        let wrapped = wrap_snapshot(&a, b"state bytes");
        let (back, state) = unwrap_snapshot(&wrapped).unwrap();
        assert_eq!((back, state), (a, &b"state bytes"[..]));
        let (empty, old) = unwrap_snapshot(b"{\"old\":1}").unwrap();
        assert_eq!((empty, old), (Applied::default(), &b"{\"old\":1}"[..]));
        assert!(unwrap_snapshot(&wrapped[..14]).is_err());
        assert!(Applied::decode(&[0, 0, 0, 1, 0]).is_none());
    }

    proptest! {
        /// Whatever order numbers are applied in, a number is reported applied exactly when
        /// it was inserted (inside the window), and the record survives encoding.
        #[test]
        fn contains_matches_a_plain_set(seqs in proptest::collection::vec(0u64..3000, 0..400)) {
            let mut a = Applied::default();
            let mut plain = std::collections::BTreeSet::new();
            for s in &seqs {
                a.insert(1, *s);
                plain.insert(*s);
            }
            for s in 0..3000u64 {
                prop_assert_eq!(a.contains(1, s), plain.contains(&s) || s <= a.proposers.get(&1).map_or(0, |p| p.floor) && !plain.is_empty());
            }
            prop_assert_eq!(Applied::decode(&a.encode()), Some(a));
        }
    }
}
