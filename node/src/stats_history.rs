//! The last hour of the node's headline figures (open connections, PUBLISHes received and
//! sent), one sample every 10 s, kept in memory for the console's chart: a node without a
//! Prometheus server still shows its recent past.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::metrics::Metrics;

/// Seconds between samples.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Samples kept: one hour.
const KEPT: usize = 360;

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// When, ms since the epoch.
    pub t: u64,
    /// MQTT connections open.
    pub connections: i64,
    /// PUBLISH packets received since start.
    pub received: u64,
    /// PUBLISH packets sent since start.
    pub sent: u64,
}

/// The samples, oldest first.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// Takes a sample now, dropping the oldest past an hour.
    pub fn sample(&self, metrics: &Metrics) {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let s = Sample {
            t,
            connections: metrics.connections_open.get(),
            received: metrics.messages_received_total.get(),
            sent: metrics.messages_sent_total.get(),
        };
        let mut samples = self.samples.lock();
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    /// Every sample kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().iter().copied().collect()
    }

    /// Samples `metrics` now and every [`INTERVAL`] on a thread of its own while the node
    /// runs.
    pub fn start(metrics: Arc<Metrics>) -> Arc<History> {
        let history = Arc::new(History::default());
        history.sample(&metrics);
        let weak = Arc::downgrade(&history);
        let spawned = std::thread::Builder::new().name("stats-history".into()).spawn(move || loop {
            std::thread::sleep(INTERVAL);
            let Some(history) = weak.upgrade() else { return };
            history.sample(&metrics);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the stats history thread; the console's chart stays empty");
        }
        history
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_of_samples_is_kept_oldest_first() {
        let (history, metrics) = (History::default(), Metrics::default());
        for i in 0..(KEPT + 5) {
            metrics.messages_received_total.add(1);
            history.sample(&metrics);
            assert_eq!(history.samples().last().unwrap().received, i as u64 + 1);
        }
        let samples = history.samples();
        assert_eq!(samples.len(), KEPT);
        assert_eq!(samples[0].received, 6);
    }
}
