//! A linearizability search over any sequential model.
//!
//! Wing & Gong's algorithm with Lowe's improvements: the operations' calls and returns sit in
//! one list in time order; the search repeatedly picks an operation whose call comes before
//! every pending return, applies it to the model and removes it from the list, and backtracks
//! when it reaches a return whose operation it could not place. Lowe's memo remembers every
//! (set of placed operations, model state) already explored, so no configuration is explored
//! twice.
//!
//! Operations with an unknown outcome (no return time) may be placed anywhere after their
//! call, or never: the history is linearizable as soon as every operation with a known
//! outcome is placed.
//!
//! What a model may tell the search, to keep real histories fast:
//! - that an operation only observes (a read): it is placed as soon as it can be, and its
//!   alternatives are never tried;
//! - a *rank* no step decreases (a version) and the exact rank an operation needs (a read of
//!   version 5 needs version 5): the search never steps past the rank a pending operation
//!   needs, and forgets unknown-outcome operations whose rank has passed;
//! - a *canonical* form of states no operation can tell apart (values nobody read);
//! - *interchangeable* unknown-outcome operations (timed-out writes of values nobody read):
//!   only the earliest-called is tried, and not where a timed-out operation that would be
//!   useless afterwards reaches the same state.
//!
//! Together these stop the search from trying every subset of timed-out writes. A budget on
//! explored configurations turns a search that would still run for hours into an honest
//! "unknown".

mod events;
mod prune;

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

use self::events::{Bits, Events, Node};
use self::prune::{Classes, Done, Floors, FrontierFloors};

/// A sequential specification: what one operation does to a state, or that it cannot happen.
pub trait Model {
    /// The model's state; small, as every explored configuration stores one.
    type State: Clone + Eq + Hash + Debug;
    /// One operation with its arguments and its observed result.
    type Op;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `op`, or `None` when `op` (with the result it observed) cannot happen
    /// in `state`.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The form of `state` the memo stores: states no operation in the history can tell apart
    /// should have the same canonical form. The identity unless the model knows better.
    fn canonical(&self, state: &Self::State) -> Self::State {
        state.clone()
    }

    /// A measure of progress no step ever decreases; 0 (no pruning) unless the model has one.
    fn rank(&self, _state: &Self::State) -> u64 {
        0
    }

    /// The rank `state` must have exactly for `op` to apply, when `op` pins one.
    fn required_rank(&self, _op: &Self::Op) -> Option<u64> {
        None
    }

    /// Whether `op` only observes: wherever it can take effect it leaves the state unchanged
    /// (a read, a refused compare-and-set). Such an operation, once it can take effect, is
    /// placed at once and never reconsidered: any linearization that places it later can
    /// place it now instead (it is called before every pending return, and moving it changes
    /// no state). This keeps concurrent reads from multiplying the configurations.
    fn observes_only(&self, _op: &Self::Op) -> bool {
        false
    }

    /// A class for an unknown-outcome operation whose members no other operation can tell
    /// apart (same effect on everything any operation observes). Only the earliest-called
    /// unplaced member of a class is tried, which keeps many timed-out writes from being tried
    /// in every combination. `None`: the operation is unique.
    fn interchangeable(&self, _op: &Self::Op) -> Option<u64> {
        None
    }
}

/// An operation with the interval in which it took effect, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<O> {
    /// The operation.
    pub op: O,
    /// When it was called.
    pub call_ns: u64,
    /// When it returned; `None` when the outcome is unknown: it may have taken effect at any
    /// time after its call, or not at all.
    pub return_ns: Option<u64>,
}

/// What the search concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<S> {
    /// There is an order of the operations, consistent with real time and the model.
    Linearizable,
    /// There is none; here is where every attempt got furthest.
    NotLinearizable(Stuck<S>),
    /// The budget ran out first.
    Unknown,
}

/// The furthest point any attempted order reached: the operation that had to take effect next
/// (its return had come) but could not, and the states it could have found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck<S> {
    /// Index of the operation in the calls given to [`check`].
    pub op: usize,
    /// Distinct model states in which the search reached that point (at most [`MAX_STUCK_STATES`]).
    pub states: Vec<S>,
}

/// How many of the states at the stuck point are kept for the explanation.
pub const MAX_STUCK_STATES: usize = 8;

/// The verdict and the work it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search<S> {
    /// What the search concluded.
    pub verdict: Verdict<S>,
    /// Configurations explored (entries of Lowe's memo).
    pub explored: u64,
}

/// What to do with the call node the walk is at.
enum Move<S> {
    /// Place its operation, reaching this state.
    Place(S),
    /// Try the next node.
    Skip,
    /// The configuration cannot be extended to a linearization: backtrack.
    DeadEnd,
}

/// A placed operation, to be undone when backtracking.
struct Frame<S> {
    /// Its call node.
    call: usize,
    /// The state before it.
    before: S,
    /// Placed as an observer: if it leads nowhere, neither does the configuration before it.
    forced: bool,
}

/// The state of one search: the configuration (placed operations and model state), how it
/// was reached, and everything already explored.
struct Searcher<'a, M: Model> {
    model: &'a M,
    calls: &'a [Call<M::Op>],
    events: Events,
    classes: Classes,
    done: Done,
    /// Each operation's required rank, for definite operations only.
    floor: Vec<Option<u64>>,
    floors: Floors,
    frontier: Option<FrontierFloors>,
    placed: Bits,
    /// Definite operations not yet placed.
    remaining: usize,
    memo: HashSet<(u32, Box<[u64]>, M::State)>,
    stack: Vec<Frame<M::State>>,
    /// The return node furthest in time reached so far, with what was stuck there.
    stuck: Option<(usize, Stuck<M::State>)>,
    state: M::State,
}

/// Searches for a linearization of `calls` under `model`, exploring at most `max_states`
/// configurations.
pub fn check<M: Model>(model: &M, calls: &[Call<M::Op>], max_states: u64) -> Search<M::State> {
    let floor: Vec<Option<u64>> =
        calls.iter().map(|call| call.return_ns.and_then(|_| model.required_rank(&call.op))).collect();
    let mut floors = Floors::default();
    for &rank in &floor {
        floors.add(rank);
    }
    let searcher = Searcher {
        model,
        calls,
        events: Events::new(calls),
        classes: Classes::new(model, calls),
        done: Done::new(model, calls),
        floor,
        floors,
        frontier: None,
        placed: Bits::new(calls.len()),
        remaining: calls.iter().filter(|call| call.return_ns.is_some()).count(),
        memo: HashSet::new(),
        stack: Vec::new(),
        stuck: None,
        state: model.init(),
    };
    searcher.run(max_states)
}

impl<M: Model> Searcher<'_, M> {
    fn run(mut self, max_states: u64) -> Search<M::State> {
        let mut entry = self.start();
        let verdict = loop {
            if self.remaining == 0 {
                break Verdict::Linearizable;
            }
            // While a definite operation is unplaced its return is still in the list, and
            // every unknown-outcome call sorts before it, so the walk meets that return first.
            let Node { op, next, .. } = self.events.nodes[entry];
            match self.consider(entry) {
                Move::Place(after) => {
                    if self.memo.len() as u64 >= max_states {
                        break Verdict::Unknown;
                    }
                    self.place(entry, after);
                    entry = self.start();
                }
                Move::Skip => entry = next,
                Move::DeadEnd => match self.backtrack() {
                    Some(resume) => entry = resume,
                    None => {
                        let fallback = || Stuck { op, states: vec![self.state.clone()] };
                        break Verdict::NotLinearizable(self.stuck.take().map_or_else(fallback, |(_, stuck)| stuck));
                    }
                },
            }
        };
        Search { verdict, explored: self.memo.len() as u64 }
    }

    fn definite(&self, op: usize) -> bool {
        self.calls[op].return_ns.is_some()
    }

    fn observer(&self, op: usize) -> bool {
        self.definite(op) && self.model.observes_only(&self.calls[op].op)
    }

    /// Where the walk of a configuration starts: at the first observer that can take effect
    /// (it will be forced), else at the head of the list.
    fn start(&self) -> usize {
        self.events
            .frontier()
            .find(|&(_, op)| self.observer(op) && self.model.step(&self.state, &self.calls[op].op).is_some())
            .map_or_else(|| self.events.first(), |(id, _)| id)
    }

    fn consider(&mut self, entry: usize) -> Move<M::State> {
        let Node { op, call, .. } = self.events.nodes[entry];
        if !call {
            self.note_stuck(entry, op);
            return Move::DeadEnd;
        }
        if !self.classes.eligible(op) {
            return Move::Skip;
        }
        let Some(after) = self.model.step(&self.state, &self.calls[op].op) else {
            return Move::Skip;
        };
        // Never step past the rank a definite operation needs: for an unknown-outcome
        // operation, any unplaced one; for a definite one, one that could come next (so that
        // a stale read, rather than the write before it, is what gets reported stuck).
        let bound = if self.definite(op) {
            self.frontier.get_or_insert_with(|| FrontierFloors::of(&self.events, &self.floor)).lowest_besides(op)
        } else {
            self.floors.lowest()
        };
        let rank = self.model.rank(&after);
        let useful =
            bound.is_none_or(|bound| rank <= bound) && (self.definite(op) || !self.has_doomed_twin(op, &after));
        if useful {
            self.placed.set(op);
            let (offset, words) = self.placed.compact(self.done.at(rank));
            self.placed.clear(op);
            if self.memo.insert((offset, words, self.model.canonical(&after))) {
                return Move::Place(after);
            }
        }
        // An observer that can take effect now but leads nowhere dooms the configuration
        // (see `Model::observes_only`).
        if self.observer(op) {
            Move::DeadEnd
        } else {
            Move::Skip
        }
    }

    fn place(&mut self, entry: usize, after: M::State) {
        let op = self.events.nodes[entry].op;
        let before = std::mem::replace(&mut self.state, after);
        self.stack.push(Frame { call: entry, before, forced: self.observer(op) });
        self.events.lift(entry);
        self.classes.place(op);
        self.placed.set(op);
        self.floors.remove(self.floor[op]);
        self.frontier = None;
        self.remaining -= usize::from(self.definite(op));
    }

    /// Undoes placements until one whose alternatives are still worth trying, and returns the
    /// node to continue from; `None` when there is nothing left to undo.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let Frame { call, before, forced } = self.stack.pop()?;
            let op = self.events.nodes[call].op;
            self.events.unlift(call);
            self.classes.unplace(op);
            self.placed.clear(op);
            self.floors.add(self.floor[op]);
            self.frontier = None;
            self.remaining += usize::from(self.definite(op));
            self.state = before;
            if !forced {
                return Some(self.events.nodes[call].next);
            }
        }
    }

    /// Whether unknown-outcome `op`, still useful later, need not be placed here because
    /// another unknown-outcome operation that can be placed now reaches the same state and
    /// could never be placed afterwards (its required rank would be behind): any
    /// linearization placing `op` here can place that one instead and leave `op` out.
    fn has_doomed_twin(&self, op: usize, after: &M::State) -> bool {
        let rank = self.model.rank(after);
        let doomed = |other: usize| self.model.required_rank(&self.calls[other].op).is_some_and(|need| need < rank);
        if doomed(op) {
            return false;
        }
        let canonical = self.model.canonical(after);
        self.events.frontier().any(|(_, other)| {
            other != op
                && !self.definite(other)
                && self.classes.eligible(other)
                && doomed(other)
                && self
                    .model
                    .step(&self.state, &self.calls[other].op)
                    .is_some_and(|twin| self.model.canonical(&twin) == canonical)
        })
    }

    /// Keeps the stuck point furthest in time (the latest return reached), with its states.
    fn note_stuck(&mut self, node: usize, op: usize) {
        match &mut self.stuck {
            Some((furthest, _)) if *furthest > node => {}
            Some((furthest, point)) if *furthest == node => {
                if point.states.len() < MAX_STUCK_STATES && !point.states.contains(&self.state) {
                    point.states.push(self.state.clone());
                }
            }
            _ => self.stuck = Some((node, Stuck { op, states: vec![self.state.clone()] })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain register: writes set it, reads must see it.
    struct Register;

    #[derive(Debug, Clone, Copy)]
    enum RegOp {
        Write(i32),
        Read(i32),
    }

    impl Model for Register {
        type State = i32;
        type Op = RegOp;

        fn init(&self) -> i32 {
            0
        }

        fn step(&self, state: &i32, op: &RegOp) -> Option<i32> {
            match *op {
                RegOp::Write(v) => Some(v),
                RegOp::Read(v) => (v == *state).then_some(v),
            }
        }
    }

    fn call(op: RegOp, call_ns: u64, return_ns: Option<u64>) -> Call<RegOp> {
        Call { op, call_ns, return_ns }
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(check(&Register, &[], 10).verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_read_may_see_a_write_it_overlaps() {
        let calls = [call(RegOp::Write(1), 0, Some(10)), call(RegOp::Read(1), 5, Some(6))];
        assert_eq!(check(&Register, &calls, 100).verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_read_after_a_write_returned_must_see_it() {
        let calls = [call(RegOp::Write(1), 0, Some(4)), call(RegOp::Read(0), 5, Some(6))];
        let Verdict::NotLinearizable(stuck) = check(&Register, &calls, 100).verdict else { panic!("linearizable") };
        assert_eq!(stuck, Stuck { op: 1, states: vec![1] });
    }

    #[test]
    fn touching_intervals_count_as_concurrent() {
        let calls = [call(RegOp::Write(1), 0, Some(5)), call(RegOp::Read(0), 5, Some(6))];
        assert_eq!(check(&Register, &calls, 100).verdict, Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_write_may_be_placed_late_or_never() {
        let late = [call(RegOp::Write(1), 0, None), call(RegOp::Read(0), 5, Some(6)), call(RegOp::Read(1), 7, Some(8))];
        assert_eq!(check(&Register, &late, 100).verdict, Verdict::Linearizable);
        let never = [call(RegOp::Write(1), 0, None), call(RegOp::Read(0), 5, Some(6))];
        assert_eq!(check(&Register, &never, 100).verdict, Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_write_cannot_take_effect_before_its_call() {
        let calls = [call(RegOp::Read(1), 0, Some(4)), call(RegOp::Write(1), 5, None)];
        assert!(matches!(check(&Register, &calls, 100).verdict, Verdict::NotLinearizable(_)));
    }

    #[test]
    fn the_budget_turns_a_long_search_into_unknown() {
        let mut calls: Vec<_> = (0..20).map(|i| call(RegOp::Write(i), 0, Some(100))).collect();
        calls.push(call(RegOp::Read(-1), 200, Some(201)));
        let search = check(&Register, &calls, 50);
        assert_eq!(search.verdict, Verdict::Unknown);
        assert_eq!(search.explored, 50);
    }
}
