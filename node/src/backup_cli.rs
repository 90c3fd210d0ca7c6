//! `ferrite backup` and `ferrite restore`: the operator's side of `crate::backup`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;

/// Flags of `ferrite backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// HTTP address of the node to back up
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub http: ferrite_cluster::PeerAddress,
    /// Where to write the backup (an existing file is replaced only once the new one is
    /// complete)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub key: crate::cluster::cli::KeyArgs,
}

/// Flags of `ferrite restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (`ferrite backup --out`)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The new node's data directory; it must not hold a node yet
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Leave persistent sessions out (every node but one of a cluster being seeded)
    #[arg(long)]
    pub skip_sessions: bool,
}

/// Counts what goes through and says it every second on stderr.
struct Progress<W> {
    inner: W,
    bytes: u64,
    started: Instant,
    said: Instant,
}

impl<W: std::io::Write> std::io::Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        if self.said.elapsed().as_secs() >= 1 {
            self.said = Instant::now();
            eprintln!("[{:>4.0}s] {:.1} MB received", self.started.elapsed().as_secs_f64(), self.bytes as f64 / 1e6);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `ferrite backup`.
pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let key = args.key.load()?;
    let partial = args.out.with_extension("partial");
    let file = crate::identity::tls::create_private(&partial)?;
    let started = Instant::now();
    let mut out = Progress { inner: std::io::BufWriter::new(file), bytes: 0, started, said: started };
    let result = ferrite_http_client::api::download(&args.http, "/backup", (&key.0, &key.1), &mut out);
    let flushed = out.flush();
    if let Err(e) = result.map_err(anyhow::Error::msg).and(flushed.map_err(anyhow::Error::from)) {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context("the backup failed; nothing was written"));
    }
    // Checked before it replaces anything: a backup that cannot be restored is no backup.
    let records = crate::backup::read_backup(std::io::BufReader::new(std::fs::File::open(&partial)?))
        .context("the node sent a backup that does not check out; nothing was written")
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&partial);
        })?;
    std::fs::rename(&partial, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "backup of {} written to {} ({} records, {:.1} MB, {:.1} s)",
        args.http,
        args.out.display(),
        records.len(),
        out.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `ferrite restore`.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let restored = crate::backup::restore(&args.file, &args.data_dir, args.skip_sessions)?;
    let rows: Vec<String> = restored.rows.iter().map(|(table, n)| format!("{table}={n}")).collect();
    println!(
        "restored {} into {}: {} rows ({}), files {}",
        args.file.display(),
        args.data_dir.display(),
        restored.rows.iter().map(|(_, n)| n).sum::<u64>(),
        rows.join(" "),
        restored.files.join(" ")
    );
    println!("start it with: ferrite serve --data-dir {}", args.data_dir.display());
    Ok(())
}
