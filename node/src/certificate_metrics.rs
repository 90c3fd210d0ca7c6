//! `ferrite_certificate_not_after_timestamp_seconds`: when the certificates the node relies
//! on expire (its TLS server certificate, its cluster certificate, the device CAs registered
//! with it), so an alert fires weeks before devices or peers start failing their handshakes.

use std::path::PathBuf;

use parking_lot::RwLock;

use crate::metrics::write_family;

/// Certificate files the node presents, by label (`server`, `cluster`): read at each scrape,
/// so a renewed file (SIGHUP) shows at once.
static FILES: RwLock<Vec<(String, PathBuf)>> = RwLock::new(Vec::new());

/// Adds a certificate file (PEM, leaf first) to watch under `label`.
pub fn watch_file(label: &str, path: PathBuf) {
    let mut files = FILES.write();
    files.retain(|(l, _)| l != label);
    files.push((label.to_string(), path));
}

/// The family: one sample per watched file, then one per registered CA (`ca/ID`).
pub fn render(out: &mut String, cas: impl IntoIterator<Item = (String, i64)>) {
    let mut samples: Vec<(String, i64)> = FILES
        .read()
        .iter()
        .filter_map(|(label, path)| {
            let pem = std::fs::read_to_string(path).ok()?;
            let parsed = crate::identity::certs::parse_pem(&pem).ok()?;
            Some((label.clone(), parsed.not_after))
        })
        .collect();
    samples.extend(cas.into_iter().map(|(id, not_after)| (format!("ca/{id}"), not_after)));
    write_family(
        out,
        "certificate_not_after_timestamp_seconds",
        "gauge",
        "When a certificate expires, seconds since the epoch: server (TLS listeners), cluster (this node's peer certificate), ca/ID (registered device CAs).",
        samples.into_iter().map(|(label, t)| (format!("certificate=\"{label}\""), t)),
    );
}
