//! What lets the search skip configurations without losing a linearization. Each rule says
//! why it is safe next to it; the brute-force property test in `shadow` checks them together.

use std::collections::{BTreeMap, HashMap};

use super::events::{Bits, Events};
use super::{Call, Model};

/// Unknown-outcome operations that can never take effect once the rank has passed the one
/// they require. Whether they were placed no longer matters, so the memo counts them as
/// placed: configurations differing only in them are one.
pub(super) struct Done {
    /// Ascending required ranks, each with the operations requiring at most that rank.
    masks: Vec<(u64, Vec<u64>)>,
    none: Vec<u64>,
}

impl Done {
    pub(super) fn new<M: Model>(model: &M, calls: &[Call<M::Op>]) -> Done {
        let mut pinned: Vec<(u64, usize)> = calls
            .iter()
            .enumerate()
            .filter(|(_, call)| call.return_ns.is_none())
            .filter_map(|(op, call)| Some((model.required_rank(&call.op)?, op)))
            .collect();
        pinned.sort_unstable();
        let mut masks: Vec<(u64, Vec<u64>)> = Vec::new();
        let mut mask = Bits::new(calls.len());
        for (rank, op) in pinned {
            mask.set(op);
            match masks.last_mut() {
                Some((last, last_mask)) if *last == rank => last_mask.clone_from(&mask.0),
                _ => masks.push((rank, mask.0.clone())),
            }
        }
        Done { masks, none: Bits::new(calls.len()).0 }
    }

    /// The operations done for good at `rank`.
    pub(super) fn at(&self, rank: u64) -> &[u64] {
        match self.masks.partition_point(|(required, _)| *required < rank) {
            0 => &self.none,
            n => &self.masks[n - 1].1,
        }
    }
}

/// Unknown-outcome operations grouped by [`Model::interchangeable`]: within a class only the
/// earliest-called unplaced member may be placed. A linearization that uses a later member
/// while an earlier one is unused can use the earlier one instead (it was called no later, and
/// nothing can tell them apart), so some linearization uses each class in call order.
pub(super) struct Classes {
    of: Vec<Option<usize>>,
    members: Vec<Vec<usize>>,
    used: Vec<usize>,
}

impl Classes {
    pub(super) fn new<M: Model>(model: &M, calls: &[Call<M::Op>]) -> Classes {
        let mut ids: HashMap<u64, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut of = vec![None; calls.len()];
        for (op, call) in calls.iter().enumerate() {
            let Some(class) = call.return_ns.is_none().then(|| model.interchangeable(&call.op)).flatten() else {
                continue;
            };
            let index = *ids.entry(class).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[index].push(op);
            of[op] = Some(index);
        }
        for class in &mut members {
            class.sort_by_key(|&op| (calls[op].call_ns, op));
        }
        let used = vec![0; members.len()];
        Classes { of, members, used }
    }

    /// Whether `op` may be placed now as far as its class goes.
    pub(super) fn eligible(&self, op: usize) -> bool {
        self.of[op].is_none_or(|class| self.members[class].get(self.used[class]) == Some(&op))
    }

    pub(super) fn place(&mut self, op: usize) {
        if let Some(class) = self.of[op] {
            self.used[class] += 1;
        }
    }

    pub(super) fn unplace(&mut self, op: usize) {
        if let Some(class) = self.of[op] {
            self.used[class] -= 1;
        }
    }
}

/// The required ranks of the unplaced definite operations (a multiset). Ranks never go down,
/// so stepping past any of them makes that operation impossible.
#[derive(Default)]
pub(super) struct Floors(BTreeMap<u64, usize>);

impl Floors {
    pub(super) fn add(&mut self, rank: Option<u64>) {
        if let Some(rank) = rank {
            *self.0.entry(rank).or_default() += 1;
        }
    }

    pub(super) fn remove(&mut self, rank: Option<u64>) {
        if let Some(rank) = rank {
            let count = self.0.get_mut(&rank).expect("only an added floor is removed");
            *count -= 1;
            if *count == 0 {
                self.0.remove(&rank);
            }
        }
    }

    pub(super) fn lowest(&self) -> Option<u64> {
        self.0.first_key_value().map(|(&rank, _)| rank)
    }
}

/// The two lowest required ranks, with their operations, among the definite operations that
/// may be placed next; two, so that an operation can be checked against the others.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FrontierFloors([Option<(u64, usize)>; 2]);

impl FrontierFloors {
    pub(super) fn of(events: &Events, floor: &[Option<u64>]) -> FrontierFloors {
        let mut lowest = [None, None];
        for (_, op) in events.frontier() {
            let Some(rank) = floor[op] else { continue };
            if lowest[0].is_none_or(|(low, _)| rank < low) {
                lowest = [Some((rank, op)), lowest[0]];
            } else if lowest[1].is_none_or(|(low, _)| rank < low) {
                lowest[1] = Some((rank, op));
            }
        }
        FrontierFloors(lowest)
    }

    /// The lowest required rank among the others than `op`.
    pub(super) fn lowest_besides(&self, op: usize) -> Option<u64> {
        let [first, second] = self.0;
        let other = if first.is_some_and(|(_, low)| low == op) { second } else { first };
        other.map(|(rank, _)| rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_keep_the_lowest_required_rank() {
        let mut floors = Floors::default();
        floors.add(Some(3));
        floors.add(Some(1));
        floors.add(Some(1));
        floors.add(None);
        floors.remove(Some(1));
        assert_eq!(floors.lowest(), Some(1));
        floors.remove(Some(1));
        assert_eq!(floors.lowest(), Some(3));
    }

    #[test]
    fn frontier_floors_exclude_the_operation_asked_about() {
        let floors = FrontierFloors([Some((2, 7)), Some((4, 9))]);
        assert_eq!((floors.lowest_besides(7), floors.lowest_besides(9)), (Some(4), Some(2)));
        assert_eq!(FrontierFloors::default().lowest_besides(1), None);
    }
}
