//! Backups of a running node and restores into a new data directory.
//!
//! A backup is every row of the tables that hold the node's state (registry, identity,
//! rules, jobs and everything else the `meta` group keeps; shadows; retained messages;
//! persistent sessions with their subscriptions and queues) as of one moment (one RocksDB
//! snapshot across them all), plus the files a restored node needs to be the same endpoint
//! to its devices and API clients: the development CA and server certificate under
//! `DATA_DIR/tls/` and the root access key in `DATA_DIR/credentials`.
//!
//! Raft's own tables (logs, applied indexes, membership) and cluster bookkeeping are left
//! out: a restored data directory starts its groups afresh, its state already in place. So
//! the same file restored into every node of a new cluster, before their first start, seeds
//! that cluster with identical replicated state.
//!
//! The file: `FERRITE-BACKUP\n`, a format version (u32, big-endian), then records of
//! `kind (u8) | key length (u32) | key | value length (u32) | value`, and an end record
//! (kind 0xFF) whose value is the number of records before it (u64) and the SHA-256 of every
//! byte before it. A restore reads and checks the whole file before it writes anything.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ferrite_cluster::{Batch, Store, Table};
use sha2::{Digest, Sha256};

/// The first bytes of every backup file.
const MAGIC: &[u8] = b"FERRITE-BACKUP\n";
/// The format this build writes and reads.
const VERSION: u32 = 1;
/// The record kind of a file under the data directory (key: its relative path).
const FILE: u8 = 0xF0;
/// The record kind that ends the file.
const END: u8 = 0xFF;
/// The largest key or value a record may hold (a corrupt length fails here, not in memory).
const MAX_FIELD: u32 = 256 << 20;

/// The tables a backup holds, each with its record kind.
pub const TABLES: [(u8, Table); 6] = [
    (1, Table::Registry),
    (2, Table::Shadows),
    (3, Table::Retained),
    (4, Table::Sessions),
    (5, Table::Subscriptions),
    (6, Table::Queue),
];

/// Files under the data directory a backup holds when they exist.
pub const FILES: [&str; 5] = ["tls/ca.pem", "tls/ca.key", "tls/server.pem", "tls/server.key", "credentials"];

fn kind_of(table: Table) -> u8 {
    TABLES.iter().find(|(_, t)| *t == table).map(|(k, _)| *k).expect("a backed-up table")
}

/// Writes a backup into `out`, hashing as it goes.
pub struct BackupWriter<W: Write> {
    out: W,
    hash: Sha256,
    records: u64,
}

impl<W: Write> BackupWriter<W> {
    /// Starts a backup: the magic and the version.
    pub fn new(out: W) -> std::io::Result<BackupWriter<W>> {
        let mut w = BackupWriter { out, hash: Sha256::new(), records: 0 };
        w.raw(MAGIC)?;
        w.raw(&VERSION.to_be_bytes())?;
        Ok(w)
    }

    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    /// Adds one record.
    pub fn record(&mut self, kind: u8, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.raw(&[kind])?;
        self.raw(&(key.len() as u32).to_be_bytes())?;
        self.raw(key)?;
        self.raw(&(value.len() as u32).to_be_bytes())?;
        self.raw(value)?;
        self.records += 1;
        Ok(())
    }

    /// Ends the file with the count and the checksum; gives back the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        let mut value = self.records.to_be_bytes().to_vec();
        value.extend_from_slice(&self.hash.clone().finalize());
        self.out.write_all(&[END])?;
        self.out.write_all(&0u32.to_be_bytes())?;
        self.out.write_all(&(value.len() as u32).to_be_bytes())?;
        self.out.write_all(&value)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a whole backup of `store` and `data_dir`'s files into `out`; how many rows it
/// holds.
pub fn write_backup<W: Write>(store: &Store, data_dir: &Path, out: W) -> anyhow::Result<u64> {
    let mut w = BackupWriter::new(out)?;
    let tables: Vec<Table> = TABLES.iter().map(|(_, t)| *t).collect();
    let rows = store
        .export(&tables, |table, k, v| w.record(kind_of(table), k, v).map_err(|e| e.to_string()))
        .map_err(anyhow::Error::msg)?;
    for name in FILES {
        if let Ok(bytes) = std::fs::read(data_dir.join(name)) {
            w.record(FILE, name.as_bytes(), &bytes)?;
        }
    }
    w.finish()?;
    Ok(rows)
}

/// One record read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    /// A table's kind, or [`FILE`].
    pub kind: u8,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Reads every record of a backup, checking its magic, version, lengths, count and
/// checksum; an error says what is wrong (a cut-short or altered file is refused whole).
pub fn read_backup(mut input: impl Read) -> anyhow::Result<Vec<Record>> {
    let mut hash = Sha256::new();
    let mut magic = vec![0; MAGIC.len()];
    input.read_exact(&mut magic).context("the file is shorter than a backup header")?;
    anyhow::ensure!(magic == MAGIC, "not a Ferrite backup (it does not start with FERRITE-BACKUP)");
    hash.update(&magic);
    let version = read_u32(&mut input, &mut hash).context("the file ends inside its header")?;
    anyhow::ensure!(
        version == VERSION,
        "backup format {version} is not one this build reads (it reads format {VERSION}): restore with the version that wrote it"
    );
    let mut records = Vec::new();
    loop {
        let before = hash.clone();
        let mut kind = [0u8];
        input.read_exact(&mut kind).context("the backup is cut short (no end record): it is incomplete")?;
        hash.update(kind);
        let key = read_field(&mut input, &mut hash)?;
        let value = read_field(&mut input, &mut hash)?;
        if kind[0] == END {
            anyhow::ensure!(value.len() == 40, "the end record is malformed");
            let count = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            anyhow::ensure!(
                count == records.len() as u64,
                "the backup says it holds {count} records but {} were read",
                records.len()
            );
            anyhow::ensure!(
                before.finalize()[..] == value[8..],
                "the backup's checksum does not match: the file was altered or damaged"
            );
            let mut rest = Vec::new();
            input.read_to_end(&mut rest)?;
            anyhow::ensure!(rest.is_empty(), "{} bytes follow the end of the backup", rest.len());
            return Ok(records);
        }
        anyhow::ensure!(
            kind[0] == FILE || TABLES.iter().any(|(k, _)| *k == kind[0]),
            "record {} has an unknown kind {}",
            records.len(),
            kind[0]
        );
        records.push(Record { kind: kind[0], key, value });
    }
}

fn read_u32(input: &mut impl Read, hash: &mut Sha256) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    hash.update(b);
    Ok(u32::from_be_bytes(b))
}

fn read_field(input: &mut impl Read, hash: &mut Sha256) -> anyhow::Result<Vec<u8>> {
    let len = read_u32(input, hash).context("the backup is cut short inside a record")?;
    anyhow::ensure!(len <= MAX_FIELD, "a record field of {len} bytes: the file is damaged");
    let mut v = vec![0; len as usize];
    input.read_exact(&mut v).context("the backup is cut short inside a record")?;
    hash.update(&v);
    Ok(v)
}

/// What a restore wrote.
#[derive(Debug, Default)]
pub struct Restored {
    /// Rows per table name.
    pub rows: Vec<(&'static str, u64)>,
    /// Files written under the data directory.
    pub files: Vec<String>,
}

/// Restores `backup` into `data_dir`, which must not hold a node yet. With `skip_sessions`,
/// persistent sessions are left out (every node but one of a cluster being seeded).
pub fn restore(backup: &Path, data_dir: &Path, skip_sessions: bool) -> anyhow::Result<Restored> {
    let file = std::fs::File::open(backup).with_context(|| format!("cannot read {}", backup.display()))?;
    let records = read_backup(std::io::BufReader::new(file)).with_context(|| format!("{}", backup.display()))?;
    let db = data_dir.join("db");
    anyhow::ensure!(
        !db.exists(),
        "{} already holds a node's data: restore into a new data directory (the running state is never overwritten)",
        data_dir.display()
    );
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let store = Store::open(&db).with_context(|| format!("cannot create storage at {}", db.display()))?;
    let mut restored = Restored::default();
    let mut batch = Batch::new();
    let mut in_batch = 0;
    for r in &records {
        if r.kind == FILE {
            let name = String::from_utf8_lossy(&r.key).into_owned();
            anyhow::ensure!(FILES.contains(&name.as_str()), "the backup holds an unexpected file {name:?}");
            let path: PathBuf = data_dir.join(&name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let text = std::str::from_utf8(&r.value).with_context(|| format!("the backup's {name} is not text"))?;
            crate::identity::tls::write_private(&path, text)?;
            restored.files.push(name);
            continue;
        }
        let (_, table) = TABLES.iter().find(|(k, _)| *k == r.kind).expect("kinds checked while reading");
        if skip_sessions && matches!(table, Table::Sessions | Table::Subscriptions | Table::Queue) {
            continue;
        }
        batch.put(*table, r.key.clone(), r.value.clone());
        match restored.rows.iter_mut().find(|(name, _)| *name == table.name()) {
            Some((_, n)) => *n += 1,
            None => restored.rows.push((table.name(), 1)),
        }
        in_batch += 1;
        if in_batch == 10_000 {
            store.write_now(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    batch.set_durable();
    store.write_now(batch)?;
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = BackupWriter::new(Vec::new()).unwrap();
        w.record(1, b"thing\0lamp", b"{\"v\":1}").unwrap();
        w.record(FILE, b"credentials", b"[default]\n").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn a_backup_reads_back_record_for_record() {
        let records = read_backup(&sample()[..]).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], Record { kind: 1, key: b"thing\0lamp".to_vec(), value: b"{\"v\":1}".to_vec() });
    }

    #[test]
    fn damaged_or_cut_short_backups_are_refused_whole() {
        let good = sample();
        for cut in [0, 5, MAGIC.len() + 2, good.len() - 1, good.len() - 41] {
            assert!(read_backup(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut altered = good.clone();
        altered[MAGIC.len() + 10] ^= 1;
        let e = read_backup(&altered[..]).unwrap_err().to_string();
        assert!(e.contains("checksum") || e.contains("unknown kind") || e.contains("cut short"), "{e}");
        let mut newer = good.clone();
        newer[MAGIC.len() + 3] = 2;
        assert!(read_backup(&newer[..]).unwrap_err().to_string().contains("format 2"));
        assert!(read_backup(&b"hello world, not a backup"[..])
            .unwrap_err()
            .to_string()
            .contains("not a Ferrite backup"));
    }
}
