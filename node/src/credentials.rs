//! Access keys for the HTTP API, kept in `DATA_DIR/credentials` in the AWS shared-credentials
//! file format, so `AWS_SHARED_CREDENTIALS_FILE=DATA_DIR/credentials aws ...` and boto3 use
//! them with no other setup. The first start writes a root key under `[default]`. The file's
//! format is read and edited by `ferrite_aws::credentials`; this module owns the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use ferrite_aws::credentials::{parse, profiles};
use parking_lot::RwLock;

/// The keys the API accepts: access key id -> secret. The file is read again when it changes,
/// so `ferrite keys create|delete` take effect on a running node.
#[derive(Debug, Default)]
pub struct Credentials {
    keys: RwLock<(Option<FileStamp>, HashMap<String, String>)>,
    /// Keys this process saw in the file and then saw removed: refused at once, before the
    /// cluster's revocation of them arrives.
    removed: RwLock<std::collections::HashSet<String>>,
    /// The file they came from.
    pub path: PathBuf,
}

/// What tells a changed file: its modification time and length.
type FileStamp = (SystemTime, u64);

fn modified(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len).map(|_| alphabet[rand::random::<usize>() % alphabet.len()] as char).collect()
}

/// The keys of a credentials file as it is now: access key id → (secret, profile).
pub fn file_keys(path: &Path) -> anyhow::Result<HashMap<String, (String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secrets = parse(&text);
    Ok(profiles(&text)
        .into_iter()
        .filter_map(|p| {
            let id = p.access_key_id?;
            let secret = secrets.get(&id)?.clone();
            Some((id, (secret, p.name)))
        })
        .collect())
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
        let stamp = modified(&path);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let keys = RwLock::new((stamp, parse(&text)));
        Ok((Credentials { keys, removed: RwLock::default(), path }, created))
    }

    /// The secret of an access key (rereading the file first if it changed).
    pub fn secret(&self, access_key: &str) -> Option<String> {
        let stamp = modified(&self.path);
        if stamp != self.keys.read().0 {
            if let Ok(text) = std::fs::read_to_string(&self.path) {
                let fresh = parse(&text);
                let mut removed = self.removed.write();
                removed.extend(self.keys.read().1.keys().filter(|k| !fresh.contains_key(*k)).cloned());
                removed.retain(|k| !fresh.contains_key(k));
                *self.keys.write() = (stamp, fresh);
            }
        }
        self.keys.read().1.get(access_key).cloned()
    }

    /// True when `access_key` was in the file and has been removed from it since (after
    /// [`Credentials::secret`] looked at the file).
    pub fn removed(&self, access_key: &str) -> bool {
        self.removed.read().contains(access_key)
    }
}

/// `ferrite keys ...`: manage the access keys of a data directory.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create an access key (a new profile in DATA_DIR/credentials) and print it. A running
    /// node accepts it at once.
    ///
    /// Example: ferrite keys create --data-dir /var/lib/ferrite --profile ops
    Create {
        /// The data directory of the node.
        #[arg(long, value_name = "DIR", default_value = "ferrite-data")]
        data_dir: PathBuf,
        /// Profile name for the new key.
        #[arg(long, value_name = "NAME")]
        profile: String,
    },
    /// List the access key ids (never the secrets) with their profiles.
    List {
        /// The data directory of the node.
        #[arg(long, value_name = "DIR", default_value = "ferrite-data")]
        data_dir: PathBuf,
    },
    /// Delete an access key; requests signed with it are refused from then on.
    Delete {
        /// The access key id.
        #[arg(value_name = "ACCESS_KEY_ID")]
        access_key: String,
        /// The data directory of the node.
        #[arg(long, value_name = "DIR", default_value = "ferrite-data")]
        data_dir: PathBuf,
    },
}

/// Runs a `keys` subcommand.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { data_dir, profile } => {
            std::fs::create_dir_all(&data_dir)?;
            let (creds, _) = Credentials::load_or_create(&data_dir)?;
            let text = std::fs::read_to_string(&creds.path)?;
            anyhow::ensure!(
                profiles(&text).iter().all(|p| p.name != profile),
                "profile `{profile}` already exists in {}",
                creds.path.display()
            );
            let id = format!("AKIA{}", random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"));
            let secret = random_string(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
            let mut new = text.trim_end().to_string();
            new.push_str(&format!("\n\n[{profile}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"));
            std::fs::write(&creds.path, new)?;
            println!("profile {profile} in {}", creds.path.display());
            println!("aws_access_key_id = {id}");
            println!("aws_secret_access_key = {secret}");
        }
        KeysCommand::List { data_dir } => {
            let path = data_dir.join("credentials");
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            for p in profiles(&text) {
                println!("{}\t{}", p.access_key_id.unwrap_or_else(|| "-".into()), p.name);
            }
        }
        KeysCommand::Delete { access_key, data_dir } => {
            let path = data_dir.join("credentials");
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let all = profiles(&text);
            anyhow::ensure!(
                all.iter().any(|p| p.access_key_id.as_deref() == Some(access_key.as_str())),
                "no access key {access_key} in {}",
                path.display()
            );
            let kept: Vec<String> = all
                .into_iter()
                .filter(|p| p.access_key_id.as_deref() != Some(access_key.as_str()))
                .map(|p| p.lines.join("\n").trim_end().to_string())
                .collect();
            std::fs::write(&path, kept.join("\n\n") + "\n")?;
            println!("deleted {access_key}");
        }
    }
    Ok(())
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
        assert_eq!(first.keys.read().1, again.keys.read().1);
        assert_eq!(first.keys.read().1.len(), 1);
    }

    #[test]
    fn created_and_deleted_keys_take_effect_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (creds, _) = Credentials::load_or_create(dir.path()).unwrap();
        let data_dir = dir.path().to_path_buf();
        run(KeysCommand::Create { data_dir: data_dir.clone(), profile: "ops".into() }).unwrap();
        let text = std::fs::read_to_string(&creds.path).unwrap();
        let ops = profiles(&text).into_iter().find(|p| p.name == "ops").unwrap();
        let id = ops.access_key_id.unwrap();
        // The file's timestamp may not move within one test; force a reread.
        creds.keys.write().0 = None;
        assert!(creds.secret(&id).is_some());
        assert!(run(KeysCommand::Create { data_dir: data_dir.clone(), profile: "ops".into() }).is_err());
        run(KeysCommand::Delete { access_key: id.clone(), data_dir: data_dir.clone() }).unwrap();
        creds.keys.write().0 = None;
        assert!(creds.secret(&id).is_none());
        assert_eq!(profiles(&std::fs::read_to_string(&creds.path).unwrap()).len(), 1);
        assert!(run(KeysCommand::Delete { access_key: id, data_dir }).is_err());
    }
}
