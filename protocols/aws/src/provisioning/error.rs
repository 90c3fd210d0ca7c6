//! The one error type of template parsing and evaluation, and the path that says where it is.
//!
//! A template author fixes a template by reading the message, so every error starts with the
//! JSON path of the offending value (`Resources.thing.Properties.ThingGroups[1]: ...`). Paths are
//! built as linked lists on the stack while walking the template and rendered only when an error
//! is actually made, so the happy path allocates nothing for them.

use std::fmt;

/// Why a template was refused by [`parse`](super::parse) or could not be evaluated by
/// [`Template::evaluate`](super::Template::evaluate): the path of the offending value, a colon and
/// the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The full message, path included; shown to API callers as is.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Where a value sits in the template body, as a chain of keys and array indices.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// A top-level section or a message's subject (`Resources`, `template`).
    pub(crate) fn root(key: &'a str) -> Path<'a> {
        Path { parent: None, step: Step::Key(key) }
    }

    /// The member `key` of the object at this path.
    pub(crate) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path { parent: Some(self), step: Step::Key(key) }
    }

    /// The item `index` of the array at this path.
    pub(crate) fn index(&self, index: usize) -> Path<'_> {
        Path { parent: Some(self), step: Step::Index(index) }
    }

    /// An error about the value at this path.
    pub(crate) fn error(&self, reason: impl fmt::Display) -> TemplateError {
        TemplateError { message: format!("{self}: {reason}") }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}")?;
            match self.step {
                Step::Key(key) => write!(f, ".{key}"),
                Step::Index(index) => write!(f, "[{index}]"),
            }
        } else {
            match self.step {
                Step::Key(key) => f.write_str(key),
                Step::Index(index) => write!(f, "[{index}]"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_renders_keys_with_dots_and_indices_in_brackets() {
        let root = Path::root("Resources");
        let thing = root.key("thing");
        let props = thing.key("Properties");
        let groups = props.key("ThingGroups");
        let item = groups.index(1);
        assert_eq!(item.error("bad").message, "Resources.thing.Properties.ThingGroups[1]: bad");
    }
}
