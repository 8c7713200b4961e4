//! Blocking file work from async code: whole-file reads, hashes and copies run
//! on tokio's blocking pool in one hop rather than one per chunk.

/// Runs `work` on the blocking pool; a task that panicked is an I/O error.
pub async fn io<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)?
}
