//! Keeping SQLite's write-ahead log small under any sustained load.
//!
//! Commits append pages to the log; a checkpoint copies them into the database. The log only starts again from
//! its beginning when a writer begins with every page copied and no reader still reading the log. Under steady
//! reads and writes that moment never comes by itself: some reader always holds an older snapshot, a commit always
//! lands between a checkpoint and the next write, and the log grows by every page ever written (about 100 MiB per
//! 1,000 processed events).
//!
//! So each round does two things. A PASSIVE checkpoint on a connection of its own copies whatever it can without
//! stopping anyone. Then, once the live part of the log passes `restart_bytes`, a RESTART checkpoint runs on the
//! writer itself, queued between writes like any other: holding the write lock it copies the few pages committed
//! since the passive pass, waits (briefly) for the readers of the old log to finish, and leaves the log ready to
//! be written again from its first page. New readers meanwhile read the database file, so they do not hold it up.
//! `journal_size_limit` then cuts the file back after the restart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::SqlitePool;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often a round runs.
const ROUND_INTERVAL: Duration = Duration::from_millis(1000);

/// The live log past which the writer restarts it.
pub const RESTART_ABOVE_BYTES: u64 = 16 * 1024 * 1024;

/// What SQLite cuts the log file back to after a restart (`journal_size_limit`).
pub const LOG_FILE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// A log file past this size means restarts keep failing: said in the log, at most once a minute.
const WARN_ABOVE_BYTES: u64 = 256 * 1024 * 1024;
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// The longest a restart holds the writer waiting for readers of the old log; a reader slower than this makes
/// the round give up and the next one try again.
const RESTART_WAIT_MS: u64 = 250;

/// The writer's usual wait for a lock held by another process (a CLI command on the same file).
pub const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of log each frame takes: a page and its 24-byte frame header.
const FRAME_HEADER_BYTES: u64 = 24;

#[derive(Clone)]
pub struct Checkpoints {
    /// Runs the passive pass, never blocking the writer.
    pub checkpointer: SqlitePool,
    /// The store's one writer, borrowed for restarts.
    pub writer: SqlitePool,
    /// The log file beside the database.
    pub log_file: PathBuf,
    pub restart_above_bytes: u64,
}

/// What one round saw and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// The live log after the passive pass.
    pub live_bytes: u64,
    /// A restart was needed and completed.
    pub restarted: bool,
    /// A restart was needed but readers held the old log longer than it waits.
    pub restart_blocked: bool,
}

impl Checkpoints {
    /// Runs a round every `ROUND_INTERVAL` until the returned guard drops.
    pub fn spawn(self) -> DropGuard {
        let stop = CancellationToken::new();
        let guard = stop.clone().drop_guard();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(ROUND_INTERVAL);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut last_warning: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = interval.tick() => {}
                }
                match self.round().await {
                    Ok(round) if round.restart_blocked => {
                        tracing::debug!(
                            live_bytes = round.live_bytes,
                            "readers held the SQLite log; restarting it later"
                        )
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "checkpointing the SQLite log failed; trying again"),
                }
                self.warn_if_large(&mut last_warning);
            }
            self.checkpointer.close().await;
        });
        guard
    }

    /// A passive pass, then a restart on the writer if the live log has passed its threshold.
    pub async fn round(&self) -> Result<Round, sqlx::Error> {
        let page_bytes: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.checkpointer)
            .await?;
        let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.checkpointer)
            .await?;
        let live_bytes = frames.max(0) as u64 * (page_bytes.max(0) as u64 + FRAME_HEADER_BYTES);
        let mut round = Round {
            live_bytes,
            restarted: false,
            restart_blocked: false,
        };
        if live_bytes <= self.restart_above_bytes {
            return Ok(round);
        }
        let mut writer = self.writer.acquire().await?;
        sqlx::query(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS}"))
            .execute(&mut *writer)
            .await?;
        let restart: Result<(i64, i64, i64), sqlx::Error> = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&mut *writer)
            .await;
        sqlx::query(&format!("PRAGMA busy_timeout = {}", WRITER_BUSY_TIMEOUT.as_millis()))
            .execute(&mut *writer)
            .await?;
        let (busy, _, _) = restart?;
        round.restarted = busy == 0;
        round.restart_blocked = busy != 0;
        Ok(round)
    }

    /// The log file's size on disk now; zero when there is none.
    pub fn log_file_bytes(&self) -> u64 {
        log_file_bytes(&self.log_file)
    }

    fn warn_if_large(&self, last_warning: &mut Option<Instant>) {
        let bytes = self.log_file_bytes();
        if bytes <= WARN_ABOVE_BYTES || last_warning.is_some_and(|at| at.elapsed() < WARN_INTERVAL) {
            return;
        }
        *last_warning = Some(Instant::now());
        tracing::warn!(
            log_mib = bytes / (1024 * 1024),
            file = %self.log_file.display(),
            "the SQLite log is large: readers are holding old snapshots and it cannot restart"
        );
    }
}

/// The size of the log file at `path`; zero when there is none (the last connection checkpointed and removed it).
fn log_file_bytes(path: &PathBuf) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{test_event, Store};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// An event whose body takes `bytes`, so that the log grows quickly.
    fn large_event(key: &str, bytes: usize) -> crate::store::NewEvent {
        let mut event = test_event(key);
        event.body = crate::store::ReceivedBody::new(vec![b'x'; bytes], serde_json::json!({}), event.received_at);
        event
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_stays_bounded_while_readers_never_stop_reading() {
        let folder = tempfile::TempDir::new().unwrap();
        let database = folder.path().join("sm8.db");
        let url = format!("sqlite://{}", database.display());
        let store = Arc::new(crate::store::SqliteStore::connect(&url).await.unwrap());
        let checkpoints = store.checkpoints_for_test(1024 * 1024);

        // Readers that always have a snapshot open somewhere, as the dashboard and workers do under load: each
        // holds its read transaction across a pause, and they overlap.
        let reading = Arc::new(AtomicBool::new(true));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (reading, pool) = (reading.clone(), store.readers_for_test());
                tokio::spawn(async move {
                    let mut reads = 0u64;
                    let mut reader = pool.acquire().await.unwrap();
                    while reading.load(Ordering::Relaxed) {
                        sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
                        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
                            .fetch_one(&mut *reader)
                            .await
                            .unwrap();
                        tokio::task::yield_now().await;
                        sqlx::query("COMMIT").execute(&mut *reader).await.unwrap();
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();

        // About 24 MiB of bodies in small commits from two writers that never pause, while rounds run back to
        // back as the timer would run them: every passive pass ends behind the latest commit.
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    for batch in 0..150 {
                        let events: Vec<_> = (0..2)
                            .map(|n| large_event(&format!("w{writer}-b{batch}-{n}"), 40_000))
                            .collect();
                        store.insert_events(&events).await.unwrap();
                    }
                })
            })
            .collect();
        let mut largest_file = 0;
        let mut restarts = 0;
        while writers.iter().any(|writer| !writer.is_finished()) {
            let round = checkpoints.round().await.unwrap();
            restarts += usize::from(round.restarted);
            largest_file = largest_file.max(checkpoints.log_file_bytes());
        }
        for writer in writers {
            writer.await.unwrap();
        }
        reading.store(false, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.await.unwrap() > 0, "every reader read");
        }

        assert!(
            largest_file < 8 * 1024 * 1024,
            "the log file reached {largest_file} bytes for a 1 MiB threshold"
        );
        assert!(restarts >= 3, "the writer restarted the log {restarts} times");
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
            .fetch_one(&store.readers_for_test())
            .await
            .unwrap();
        assert_eq!(stored, 600, "nothing was lost to the restarts");
    }

    #[tokio::test]
    async fn a_small_log_is_only_checkpointed_passively() {
        let folder = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}", folder.path().join("sm8.db").display());
        let store = crate::store::SqliteStore::connect(&url).await.unwrap();
        let checkpoints = store.checkpoints_for_test(RESTART_ABOVE_BYTES);
        store.insert_events(&[test_event("one")]).await.unwrap();
        let round = checkpoints.round().await.unwrap();
        assert!(
            round.live_bytes > 0 && round.live_bytes < RESTART_ABOVE_BYTES,
            "{round:?}"
        );
        assert!(!round.restarted && !round.restart_blocked, "{round:?}");
    }

    #[test]
    fn a_missing_log_file_takes_no_space() {
        assert_eq!(log_file_bytes(&PathBuf::from("/nonexistent/sm8.db-wal")), 0);
    }
}
