//! `GET /backup` (signed): a consistent backup of the node's state, streamed as it is read
//! (`crate::backup` has the format). `ferrite backup --out FILE` calls it.

use actix_web::{web, HttpResponse};
use futures_util::stream;

use super::call::Call;
use super::error::ApiResult;
use super::Api;

/// Chunks the backup thread hands to the response (each ~64 KiB): a slow client slows the
/// reading, it does not fill memory.
const QUEUED_CHUNKS: usize = 16;
const CHUNK: usize = 64 * 1024;

type Chunk = Result<web::Bytes, std::io::Error>;

/// Collects bytes into chunks and sends them to the response.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = web::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// `GET /backup`.
pub async fn backup(api: web::Data<Api>, _call: Call) -> ApiResult {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(QUEUED_CHUNKS);
    let (store, data_dir) = (api.services.broker.store.clone(), api.services.data_dir.clone());
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let writer = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
            match crate::backup::write_backup(&store, &data_dir, writer) {
                Ok(rows) => tracing::info!(rows, seconds = started.elapsed().as_secs_f64(), "backup sent"),
                Err(e) => {
                    tracing::error!(error = %e, "backup failed; the client receives a cut-short file, which restore refuses");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        })
        .map_err(|e| ferrite_aws::AwsError::new(500, "InternalFailureException", format!("cannot start the backup: {e}")))?;
    let body = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    Ok(HttpResponse::Ok().content_type("application/octet-stream").streaming(body))
}
