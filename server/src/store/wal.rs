//! SQLite's write-ahead log, synced outside the writer, so one fsync acknowledges every commit made meanwhile.
//! (Its checkpoints, which keep it small, are in `sqlite/checkpoints.rs`.)
//!
//! With `synchronous = FULL`, SQLite syncs the log inside each commit while it holds the only write lock: every
//! other write waits for the disk, once per commit. Here commits run with `synchronous = NORMAL` (the log is written
//! but not synced) and a write that must be durable waits afterwards, lock released, for a sync of the log file
//! that began after its commit returned. Syncing a file flushes everything written to it before, so concurrent
//! commits share one sync and the writer goes on meanwhile. A checkpoint that moves committed frames into the
//! database syncs the log first, so frames are never copied out of the log unsynced.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

pub struct WalSync {
    /// The log beside the database: `<database>-wal`.
    path: PathBuf,
    /// How many commits have returned; each is numbered by this count when it returns.
    committed: AtomicU64,
    /// Held while a sync runs: the highest commit number known to be on disk.
    synced: Mutex<u64>,
}

impl WalSync {
    /// Syncs the log file at `path` (`<database>-wal`).
    pub fn new(path: PathBuf) -> WalSync {
        WalSync {
            path,
            committed: AtomicU64::new(0),
            synced: Mutex::new(0),
        }
    }

    /// Numbers a commit that has returned; `sync` with the number returns once the commit is on disk.
    pub fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once commit `number` is on disk: at once if a sync that began after it has finished, otherwise
    /// after syncing the log, which also covers every commit that returned before this sync began.
    pub async fn sync(&self, number: u64) -> io::Result<()> {
        let mut synced = self.synced.lock().await;
        if *synced >= number {
            return Ok(());
        }
        let covered = self.committed.load(Ordering::SeqCst);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || sync_file(&path))
            .await
            .map_err(io::Error::other)??;
        *synced = covered;
        Ok(())
    }
}

/// Opened afresh for each sync, so a log that SQLite deleted and created again is never missed.
fn sync_file(path: &PathBuf) -> io::Result<()> {
    match File::open(path) {
        Ok(log) => log.sync_data(),
        // No log: the last connection checkpointed it into the database, syncing the database, and removed it.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_commit_is_synced_once_and_later_waits_return_at_once() {
        let folder = tempfile::TempDir::new().unwrap();
        File::create(folder.path().join("sm8.db-wal"))
            .unwrap()
            .write_all(b"frames")
            .unwrap();
        let log = WalSync::new(folder.path().join("sm8.db-wal"));
        let first = log.committed();
        log.sync(first).await.unwrap();
        assert_eq!(*log.synced.lock().await, 1);
        log.sync(first).await.unwrap();
        assert_eq!(*log.synced.lock().await, 1, "nothing newer to sync");
    }

    #[tokio::test]
    async fn concurrent_commits_share_syncs_and_all_return_synced() {
        let folder = tempfile::TempDir::new().unwrap();
        File::create(folder.path().join("sm8.db-wal")).unwrap();
        let log = Arc::new(WalSync::new(folder.path().join("sm8.db-wal")));
        let waits: Vec<_> = (0..64)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    let number = log.committed();
                    log.sync(number).await.unwrap();
                    number
                })
            })
            .collect();
        for wait in waits {
            let number = wait.await.unwrap();
            assert!(*log.synced.lock().await >= number);
        }
    }

    #[tokio::test]
    async fn committed_frames_reach_the_database_file_without_the_writer_checkpointing() {
        let folder = tempfile::TempDir::new().unwrap();
        let database = folder.path().join("sm8.db");
        let store = crate::store::connect(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
        let before = std::fs::metadata(&database).unwrap().len();
        let events: Vec<_> = (0..200).map(|n| crate::store::test_event(&format!("k{n}"))).collect();
        store.insert_events(&events).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&database).unwrap().len() <= before {
            assert!(std::time::Instant::now() < deadline, "no checkpoint within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_missing_log_means_everything_is_in_the_database() {
        let folder = tempfile::TempDir::new().unwrap();
        let log = WalSync::new(folder.path().join("sm8.db-wal"));
        let number = log.committed();
        log.sync(number).await.unwrap();
    }
}
