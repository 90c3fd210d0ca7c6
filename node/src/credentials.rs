//! Access keys for the HTTP API, kept in `DATA_DIR/credentials` in the AWS shared-credentials
//! file format, so `AWS_SHARED_CREDENTIALS_FILE=DATA_DIR/credentials aws ...` and boto3 use
//! them with no other setup. The first start writes a root key under `[default]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The keys the API accepts: access key id -> secret.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    keys: HashMap<String, String>,
    /// The file they came from.
    pub path: PathBuf,
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len).map(|_| alphabet[rand::random::<usize>() % alphabet.len()] as char).collect()
}

/// Parses a shared-credentials file: every profile's `aws_access_key_id` and
/// `aws_secret_access_key`.
fn parse(text: &str) -> HashMap<String, String> {
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

impl Credentials {
    /// Reads `data_dir/credentials`, writing a new root key there first when the file does
    /// not exist. Returns the keys and whether the file was just created.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(Credentials, bool)> {
        let path = data_dir.join("credentials");
        let created = !path.exists();
        if created {
            let id = format!("AKIA{}", random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
            let secret = random_string(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
            let text = format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
            write_private(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok((Credentials { keys: parse(&text), path }, created))
    }

    /// The secret of an access key.
    pub fn secret(&self, access_key: &str) -> Option<String> {
        self.keys.get(access_key).cloned()
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        f.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_writes_a_default_profile_that_later_starts_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = Credentials::load_or_create(dir.path()).unwrap();
        assert!(created);
        let text = std::fs::read_to_string(dir.path().join("credentials")).unwrap();
        assert!(text.starts_with("[default]\naws_access_key_id = AKIA"));
        let (again, created) = Credentials::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.keys, again.keys);
        assert_eq!(first.keys.len(), 1);
    }

    #[test]
    fn every_profile_of_the_file_is_a_key() {
        let keys = parse("[default]\naws_access_key_id = A\naws_secret_access_key = s1\n\n[ops]\naws_access_key_id=B\naws_secret_access_key=s2\nregion=x\n");
        assert_eq!(keys.get("A").map(String::as_str), Some("s1"));
        assert_eq!(keys.get("B").map(String::as_str), Some("s2"));
    }
}
