//! Durable writes per second through a replicated group (one member: the log append is the
//! commit) against the design it replaced in the same run: one fsync'd RocksDB write per
//! command under a lock, as the shadow service did before the groups existed. Each of N
//! client threads proposes a command and waits for its answer before the next one, as
//! devices waiting for `accepted` do.
//!
//! Run: cargo bench -p ferrite-cluster --bench group_commit

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ferrite_cluster::{Batch, Group, StateMachine, Store, Table};
use parking_lot::Mutex;

/// `cargo bench` passes `--bench`; under `cargo test` the bench only smoke-runs.
fn measure_for() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(100)
    }
}

/// Stores each command under its own key, as a shadow update stores its document.
struct Records;

impl StateMachine for Records {
    type Output = ();
    fn apply(&self, index: u64, command: &[u8], writes: &mut Batch) {
        writes.put(Table::Shadows, index.to_be_bytes().to_vec(), command.to_vec());
    }
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&self, _data: &[u8], _writes: &mut Batch) -> Result<(), String> {
        Ok(())
    }
}

/// Runs `clients` threads calling `one` until the time is up; commands per second.
fn run(clients: usize, one: impl Fn(usize, u64) + Sync) -> f64 {
    let until = Instant::now() + measure_for();
    let done = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (one, done) = (&one, &done);
            s.spawn(move || {
                let mut i = 0;
                while Instant::now() < until {
                    one(c, i);
                    i += 1;
                }
                done.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    done.into_inner() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let payload = vec![b'x'; 512];
    println!("{:>8} {:>16} {:>16} {:>8}", "clients", "fsync/command", "group log", "ratio");
    for clients in [1, 4, 16, 64] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let lock = Mutex::new(());
        let baseline = run(clients, |c, i| {
            let _held = lock.lock();
            let mut b = Batch::new();
            b.put(Table::Shadows, format!("{c}/{i}").into_bytes(), payload.clone());
            b.set_durable();
            store.write_now(b).expect("write");
        });
        let group = Group::open(store.clone(), 1, "bench", Records).expect("group");
        let grouped = run(clients, |_, _| {
            let (tx, rx) = mpsc::channel();
            group.propose(payload.clone(), Box::new(move |r| tx.send(r.is_ok()).expect("answer")));
            assert!(rx.recv().expect("answer"));
        });
        println!("{clients:>8} {baseline:>14.0}/s {grouped:>14.0}/s {:>7.2}x", grouped / baseline);
    }
}
