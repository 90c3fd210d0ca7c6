//! AWS's shared-credentials file format (`~/.aws/credentials`): `[profile]` sections with
//! `aws_access_key_id` and `aws_secret_access_key`. The node keeps its API keys in such a file
//! so the AWS CLI and the SDKs use them with no other setup; reading and editing the text is
//! pure and lives here, the file itself stays with the node.

use std::collections::HashMap;

/// One `[name]` section of a shared-credentials file, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The name between the brackets.
    pub name: String,
    /// Its `aws_access_key_id`, if it has one.
    pub access_key_id: Option<String>,
    /// Its lines as they are in the file, the `[name]` header first, so a profile can be
    /// removed and the rest written back unchanged.
    pub lines: Vec<String>,
}

/// Every profile's key in a shared-credentials file: access key id -> secret. A profile
/// without both `aws_access_key_id` and `aws_secret_access_key` gives no key.
pub fn parse(text: &str) -> HashMap<String, String> {
    let mut keys = HashMap::new();
    let (mut id, mut secret): (Option<String>, Option<String>) = (None, None);
    let mut flush = |id: &mut Option<String>, secret: &mut Option<String>| {
        if let (Some(i), Some(s)) = (id.take(), secret.take()) {
            keys.insert(i, s);
        }
    };
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(&mut id, &mut secret);
        } else if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    flush(&mut id, &mut secret);
    keys
}

/// The profiles of a shared-credentials file, in file order. Lines before the first
/// `[name]` belong to no profile and are left out.
pub fn profiles(text: &str) -> Vec<Profile> {
    let mut out: Vec<Profile> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            out.push(Profile { name: name.to_string(), access_key_id: None, lines: vec![line.to_string()] });
        } else if let Some(p) = out.last_mut() {
            if let Some(("aws_access_key_id", v)) = t.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                p.access_key_id = Some(v.to_string());
            }
            p.lines.push(line.to_string());
        }
    }
    out
}

/// The (access key id, secret) of `profile` in a shared-credentials file's text, for tools
/// that sign requests with a named profile as the AWS CLI does.
pub fn profile_key(text: &str, profile: &str) -> Option<(String, String)> {
    let found = profiles(text).into_iter().find(|p| p.name == profile)?;
    parse(&found.lines.join("\n")).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[default]\naws_access_key_id = A\naws_secret_access_key = s1\n\n[ops]\naws_access_key_id=B\naws_secret_access_key=s2\nregion=x\n";

    #[test]
    fn every_profile_of_the_file_is_a_key() {
        let keys = parse(FILE);
        assert_eq!(keys.get("A").map(String::as_str), Some("s1"));
        assert_eq!(keys.get("B").map(String::as_str), Some("s2"));
    }

    #[test]
    fn profiles_keep_their_order_ids_and_lines() {
        let all = profiles(FILE);
        let names: Vec<_> = all.iter().map(|p| (p.name.as_str(), p.access_key_id.as_deref())).collect();
        assert_eq!(names, [("default", Some("A")), ("ops", Some("B"))]);
        assert_eq!(all[1].lines.last().map(String::as_str), Some("region=x"));
    }

    #[test]
    fn a_profile_key_is_found_by_name() {
        assert_eq!(profile_key(FILE, "ops"), Some(("B".to_string(), "s2".to_string())));
        assert_eq!(profile_key(FILE, "missing"), None);
    }
}
