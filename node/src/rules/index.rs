//! An index over rules' FROM filters: a trie by topic level, so a message costs one walk of
//! its topic's levels however many rules are loaded, not one filter match per rule.

use std::collections::HashMap;

#[derive(Default, Debug)]
struct Node {
    children: HashMap<String, Node>,
    plus: Option<Box<Node>>,
    /// Rules whose filter ends with `#` here.
    hash: Vec<usize>,
    /// Rules whose filter ends exactly here.
    exact: Vec<usize>,
}

/// Rule ids by topic filter.
#[derive(Default, Debug)]
pub struct FilterIndex {
    root: Node,
}

impl FilterIndex {
    /// Adds rule `id` under `filter`.
    pub fn insert(&mut self, filter: &str, id: usize) {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            match level {
                "#" => {
                    node.hash.push(id);
                    return;
                }
                "+" => node = node.plus.get_or_insert_with(Default::default),
                other => node = node.children.entry(other.to_string()).or_default(),
            }
        }
        node.exact.push(id);
    }

    /// Appends the ids of every rule whose filter matches `topic` (MQTT rules: `a/#` matches
    /// `a`; a leading wildcard does not match a `$` topic). Ids come out sorted and unique.
    pub fn matches(&self, topic: &str, out: &mut Vec<usize>) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        walk(&self.root, &levels, 0, dollar, out);
        out.sort_unstable();
        out.dedup();
    }
}

fn walk(node: &Node, levels: &[&str], depth: usize, dollar: bool, out: &mut Vec<usize>) {
    let wildcards_allowed = !(depth == 0 && dollar);
    if wildcards_allowed {
        out.extend_from_slice(&node.hash);
    }
    let Some(level) = levels.get(depth) else {
        out.extend_from_slice(&node.exact);
        return;
    };
    if let Some(child) = node.children.get(*level) {
        walk(child, levels, depth + 1, dollar, out);
    }
    if wildcards_allowed {
        if let Some(plus) = &node.plus {
            walk(plus, levels, depth + 1, dollar, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filter() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("+"), Just("$x")], 1..4).prop_flat_map(|levels| {
            let base = levels.join("/");
            prop_oneof![Just(base.clone()), Just(format!("{base}/#")), Just("#".to_string())]
        })
    }

    proptest! {
        #[test]
        fn index_agrees_with_matching_each_filter(filters in prop::collection::vec(filter(), 1..20),
                                                   topic in prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("$x"), Just("")], 1..5)) {
            let topic = topic.join("/");
            let mut index = FilterIndex::default();
            for (i, f) in filters.iter().enumerate() {
                index.insert(f, i);
            }
            let mut got = vec![];
            index.matches(&topic, &mut got);
            let expected: Vec<usize> = filters.iter().enumerate().filter(|(_, f)| ferrite_rules::topic_matches(f, &topic)).map(|(i, _)| i).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
