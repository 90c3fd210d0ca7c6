//! The sequential specification of one thing's shadow: a versioned register.

use std::collections::HashSet;
use std::fmt;

use crate::checkers::linear::Model;

/// A shadow as a read reports it: its version (0 before the first write) and its value (null
/// while the shadow does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ShadowState {
    pub(crate) version: u64,
    pub(crate) value: Option<i64>,
}

impl fmt::Display for ShadowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(value) => write!(f, "version {} value {value}", self.version),
            None => write!(f, "version {} value null", self.version),
        }
    }
}

/// What the register holds, as far as the history can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Content {
    /// Nothing: the shadow does not exist.
    Absent,
    /// A value some read returned.
    Value(i64),
    /// Any value no read returned. Such values are all alike to every operation in the
    /// history, so the search's memo counts them as one ([`Model::canonical`]); the states it
    /// steps through keep the real value, for explanations.
    Unread,
}

/// The model's state: a version and what the register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RegisterState {
    pub(crate) version: u64,
    pub(crate) content: Content,
}

impl fmt::Display for RegisterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.content {
            Content::Absent => write!(f, "version {} value null", self.version),
            Content::Value(value) => write!(f, "version {} value {value}", self.version),
            Content::Unread => write!(f, "version {} holding a value no read returned", self.version),
        }
    }
}

/// One shadow operation with the result the client observed (operations known not to have
/// happened are dropped before the search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShadowOp {
    /// Set the value; `version` is the new version the reply reported, if it did.
    Write { value: i64, version: Option<u64> },
    /// Observed this state.
    Read { seen: ShadowState },
    /// Set the value if the version is `expected`; `version` as for a write.
    Cas { expected: u64, value: i64, version: Option<u64> },
    /// A compare-and-set refused for a version conflict: the version was not `expected`.
    CasFailed { expected: u64 },
}

impl fmt::Display for ShadowOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ShadowOp::Write { value, version: Some(version) } => write!(f, "write {value} -> version {version}"),
            ShadowOp::Write { value, version: None } => write!(f, "write {value}"),
            ShadowOp::Read { seen } => write!(f, "read -> {seen}"),
            ShadowOp::Cas { expected, value, version: Some(version) } => {
                write!(f, "cas expected {expected} value {value} -> version {version}")
            }
            ShadowOp::Cas { expected, value, version: None } => write!(f, "cas expected {expected} value {value}"),
            ShadowOp::CasFailed { expected } => write!(f, "cas expected {expected} -> version conflict"),
        }
    }
}

/// The model the linearizability search runs. Versions only grow, so the version is the rank.
/// It knows which values some read returned (see [`Content::Unread`]).
#[derive(Debug, Default)]
pub(crate) struct VersionedRegister {
    observed: HashSet<i64>,
}

impl VersionedRegister {
    /// The model for one key's operations.
    pub(crate) fn for_ops<'a>(ops: impl IntoIterator<Item = &'a ShadowOp>) -> Self {
        let observed = ops
            .into_iter()
            .filter_map(|op| match op {
                ShadowOp::Read { seen } => seen.value,
                _ => None,
            })
            .collect();
        VersionedRegister { observed }
    }

    fn set(&self, state: &RegisterState, value: i64, reported: Option<u64>) -> Option<RegisterState> {
        let version = state.version.checked_add(1)?;
        reported
            .is_none_or(|reported| reported == version)
            .then_some(RegisterState { version, content: Content::Value(value) })
    }
}

impl Model for VersionedRegister {
    type State = RegisterState;
    type Op = ShadowOp;

    fn init(&self) -> RegisterState {
        RegisterState { version: 0, content: Content::Absent }
    }

    fn step(&self, state: &RegisterState, op: &ShadowOp) -> Option<RegisterState> {
        match *op {
            ShadowOp::Write { value, version } => self.set(state, value, version),
            ShadowOp::Read { seen } => {
                let same = match (state.content, seen.value) {
                    (Content::Absent, None) => true,
                    (Content::Value(held), Some(seen)) => held == seen,
                    _ => false,
                };
                (same && state.version == seen.version).then_some(*state)
            }
            ShadowOp::Cas { expected, value, version } if state.version == expected => self.set(state, value, version),
            ShadowOp::Cas { .. } => None,
            ShadowOp::CasFailed { expected } => (state.version != expected).then_some(*state),
        }
    }

    fn canonical(&self, state: &RegisterState) -> RegisterState {
        match state.content {
            Content::Value(value) if !self.observed.contains(&value) => {
                RegisterState { version: state.version, content: Content::Unread }
            }
            _ => *state,
        }
    }

    fn rank(&self, state: &RegisterState) -> u64 {
        state.version
    }

    fn required_rank(&self, op: &ShadowOp) -> Option<u64> {
        match *op {
            ShadowOp::Write { version, .. } => version?.checked_sub(1),
            ShadowOp::Read { seen } => Some(seen.version),
            ShadowOp::Cas { expected, .. } => Some(expected),
            ShadowOp::CasFailed { .. } => None,
        }
    }

    fn observes_only(&self, op: &ShadowOp) -> bool {
        matches!(op, ShadowOp::Read { .. } | ShadowOp::CasFailed { .. })
    }

    fn interchangeable(&self, op: &ShadowOp) -> Option<u64> {
        match *op {
            ShadowOp::Write { value, .. } if !self.observed.contains(&value) => Some(0),
            ShadowOp::Cas { expected, value, .. } if !self.observed.contains(&value) => expected.checked_add(1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(version: u64, value: Option<i64>) -> ShadowOp {
        ShadowOp::Read { seen: ShadowState { version, value } }
    }

    /// A model for a history whose reads returned 7, 9 and 30.
    fn model() -> VersionedRegister {
        VersionedRegister::for_ops(&[read(1, Some(7)), read(1, Some(9)), read(1, Some(30))])
    }

    fn holding(version: u64, value: i64) -> RegisterState {
        RegisterState { version, content: Content::Value(value) }
    }

    #[test]
    fn a_write_bumps_the_version_it_reports() {
        let model = model();
        let v3 = holding(3, 30);
        assert_eq!(model.step(&v3, &ShadowOp::Write { value: 7, version: Some(4) }), Some(holding(4, 7)));
        assert_eq!(model.step(&v3, &ShadowOp::Write { value: 7, version: None }), Some(holding(4, 7)));
        assert_eq!(model.step(&v3, &ShadowOp::Write { value: 7, version: Some(5) }), None);
    }

    #[test]
    fn a_cas_applies_only_at_its_expected_version() {
        let model = model();
        let v3 = holding(3, 30);
        let cas = |expected| ShadowOp::Cas { expected, value: 9, version: None };
        assert_eq!(model.step(&v3, &cas(3)), Some(holding(4, 9)));
        assert_eq!(model.step(&v3, &cas(2)), None);
        assert_eq!(model.step(&v3, &ShadowOp::CasFailed { expected: 2 }), Some(v3));
        assert_eq!(model.step(&v3, &ShadowOp::CasFailed { expected: 3 }), None);
    }

    #[test]
    fn a_read_must_see_the_state_exactly() {
        let model = model();
        let v3 = holding(3, 30);
        assert_eq!(model.step(&v3, &read(3, Some(30))), Some(v3));
        assert_eq!(model.step(&v3, &read(3, Some(7))), None);
        assert_eq!(model.step(&v3, &read(2, Some(30))), None);
        assert_eq!(model.step(&model.init(), &read(0, None)), Some(model.init()));
    }

    #[test]
    fn values_no_read_returned_are_all_alike() {
        let model = model();
        let v3 = holding(3, 30);
        let unread = RegisterState { version: 4, content: Content::Unread };
        let wrote = |value| model.step(&v3, &ShadowOp::Write { value, version: None }).unwrap();
        assert_eq!(wrote(100), holding(4, 100));
        assert_eq!((model.canonical(&wrote(100)), model.canonical(&wrote(101))), (unread, unread));
        assert_eq!(model.canonical(&wrote(7)), holding(4, 7));
        assert_eq!(model.step(&wrote(100), &read(4, Some(101))), None);
        assert_eq!(unread.to_string(), "version 4 holding a value no read returned");
    }

    #[test]
    fn operations_that_report_a_version_pin_the_version_before_them() {
        let model = model();
        assert_eq!(model.required_rank(&ShadowOp::Write { value: 1, version: Some(4) }), Some(3));
        assert_eq!(model.required_rank(&ShadowOp::Write { value: 1, version: None }), None);
        assert_eq!(model.required_rank(&read(3, None)), Some(3));
        assert_eq!(model.required_rank(&ShadowOp::Cas { expected: 2, value: 1, version: None }), Some(2));
        assert_eq!(model.required_rank(&ShadowOp::CasFailed { expected: 2 }), None);
    }

    #[test]
    fn writes_of_values_nobody_read_are_interchangeable() {
        let model = model();
        let write = |value| ShadowOp::Write { value, version: None };
        assert_eq!(model.interchangeable(&write(6)), model.interchangeable(&write(8)));
        assert!(model.interchangeable(&write(6)).is_some());
        assert_eq!(model.interchangeable(&write(7)), None);
        let cas = |expected, value| ShadowOp::Cas { expected, value, version: None };
        assert_eq!(model.interchangeable(&cas(2, 6)), model.interchangeable(&cas(2, 8)));
        assert_ne!(model.interchangeable(&cas(2, 6)), model.interchangeable(&cas(3, 6)));
        assert_eq!(model.interchangeable(&cas(2, 7)), None);
    }
}
