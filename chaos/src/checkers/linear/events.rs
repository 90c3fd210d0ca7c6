//! The search's bookkeeping of calls and returns, and of which operations are placed.

use super::Call;

/// Marks the end of the list and "no return node".
const NONE: usize = usize::MAX;
/// The list's head node, before every event.
const HEAD: usize = 0;

/// A call or return in the doubly linked event list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) op: usize,
    pub(super) call: bool,
    prev: usize,
    pub(super) next: usize,
}

/// The calls and returns of the unplaced operations in time order, with dancing-links
/// removal: a removed node keeps its links, so removals undone in reverse order restore the
/// list exactly.
pub(super) struct Events {
    pub(super) nodes: Vec<Node>,
    return_of: Vec<usize>,
}

impl Events {
    pub(super) fn new<O>(calls: &[Call<O>]) -> Events {
        // Ties put calls before returns: operations that touch in time count as concurrent,
        // which can only make the checker more lenient.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(calls.len() * 2);
        for (op, call) in calls.iter().enumerate() {
            events.push((call.call_ns, false, op));
            if let Some(ret) = call.return_ns {
                events.push((ret.max(call.call_ns), true, op));
            }
        }
        events.sort_unstable();
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node { op: NONE, call: false, prev: NONE, next: NONE });
        let mut return_of = vec![NONE; calls.len()];
        for (index, &(_, is_return, op)) in events.iter().enumerate() {
            let id = index + 1;
            nodes[id - 1].next = id;
            nodes.push(Node { op, call: !is_return, prev: id - 1, next: NONE });
            if is_return {
                return_of[op] = id;
            }
        }
        Events { nodes, return_of }
    }

    /// The first node of the list.
    pub(super) fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    /// The call nodes that come before the first return: the operations that may be placed
    /// next.
    pub(super) fn frontier(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut id = self.first();
        std::iter::from_fn(move || {
            let node = self.nodes.get(id).filter(|node| node.call)?;
            let item = (id, node.op);
            id = node.next;
            Some(item)
        })
    }

    fn remove(&mut self, id: usize) {
        let (prev, next) = (self.nodes[id].prev, self.nodes[id].next);
        self.nodes[prev].next = next;
        if next != NONE {
            self.nodes[next].prev = prev;
        }
    }

    fn restore(&mut self, id: usize) {
        let (prev, next) = (self.nodes[id].prev, self.nodes[id].next);
        self.nodes[prev].next = id;
        if next != NONE {
            self.nodes[next].prev = id;
        }
    }

    /// Takes an operation out of the list: its call node and its return node, if any.
    pub(super) fn lift(&mut self, call: usize) {
        self.remove(call);
        let ret = self.return_of[self.nodes[call].op];
        if ret != NONE {
            self.remove(ret);
        }
    }

    /// Puts back the operation lifted last.
    pub(super) fn unlift(&mut self, call: usize) {
        let ret = self.return_of[self.nodes[call].op];
        if ret != NONE {
            self.restore(ret);
        }
        self.restore(call);
    }
}

/// A set of operations by index.
#[derive(Debug, Clone)]
pub(super) struct Bits(pub(super) Vec<u64>);

impl Bits {
    pub(super) fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    pub(super) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    pub(super) fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    /// The set, with `done` added, without its leading all-set words and trailing empty words:
    /// unambiguous with the offset, and small since placed operations are nearly a prefix.
    pub(super) fn compact(&self, done: &[u64]) -> (u32, Box<[u64]>) {
        let words: Vec<u64> = self.0.iter().zip(done).map(|(placed, done)| placed | done).collect();
        let start = words.iter().position(|&w| w != u64::MAX).unwrap_or(words.len());
        let end = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1).max(start);
        (u32::try_from(start).expect("fewer than 2^38 operations"), words[start..end].into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(call_ns: u64, return_ns: Option<u64>) -> Call<()> {
        Call { op: (), call_ns, return_ns }
    }

    fn ops(events: &Events) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut id = events.first();
        while id != NONE {
            out.push((events.nodes[id].op, events.nodes[id].call));
            id = events.nodes[id].next;
        }
        out
    }

    #[test]
    fn events_are_in_time_order_with_calls_first_on_ties() {
        let events = Events::new(&[call(0, Some(5)), call(5, Some(6)), call(1, None)]);
        assert_eq!(ops(&events), vec![(0, true), (2, true), (1, true), (0, false), (1, false)]);
        assert_eq!(events.frontier().map(|(_, op)| op).collect::<Vec<_>>(), vec![0, 2, 1]);
    }

    #[test]
    fn lifting_and_unlifting_restores_the_list() {
        let mut events = Events::new(&[call(0, Some(5)), call(1, Some(2)), call(3, None)]);
        let before = ops(&events);
        let call_of = |events: &Events, op| events.frontier().find(|&(_, o)| o == op).unwrap().0;
        let first = call_of(&events, 1);
        events.lift(first);
        let second = call_of(&events, 0);
        events.lift(second);
        assert_eq!(ops(&events), vec![(2, true)]);
        events.unlift(second);
        events.unlift(first);
        assert_eq!(ops(&events), before);
    }

    #[test]
    fn compact_bits_drop_full_and_empty_words() {
        let none = [0; 4];
        let mut bits = Bits(vec![u64::MAX, 0b101, 0, 0]);
        assert_eq!(bits.compact(&none), (1, vec![0b101].into()));
        assert_eq!(bits.compact(&[0, 0b10, 0b1, 0]), (1, vec![0b111, 0b1].into()));
        bits.clear(64);
        bits.clear(66);
        assert_eq!(bits.compact(&none), (1, vec![].into()));
        bits.0[1] = u64::MAX;
        assert_eq!(bits.compact(&none), (2, vec![].into()));
    }
}
