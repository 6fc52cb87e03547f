//! `sm8-webhooks backup`: a consistent copy of a SQLite database, taken while the server keeps serving.
//!
//! `VACUUM INTO` reads the database inside one read transaction (in WAL mode it never blocks the writer, nor is
//! blocked by it) and writes a compact copy of that snapshot, with every committed page of the log folded in.
//! The copy is written beside its destination under a temporary name, synced, then renamed, so a destination
//! that exists is always a whole backup.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::super::StoreError;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Copies the database at `database_url` (`sqlite://PATH`) to `to`, which must not exist yet.
pub async fn backup_sqlite(database_url: &str, to: &Path) -> Result<Backup, StoreError> {
    if to.exists() {
        return Err(StoreError::Backup(format!(
            "{} exists already: choose a new file",
            to.display()
        )));
    }
    let options = SqliteConnectOptions::from_str(database_url)?.read_only(true);
    if !options.get_filename().exists() {
        return Err(StoreError::Backup(format!(
            "there is no database at {}",
            options.get_filename().display()
        )));
    }
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    let mut connection = options.connect().await?;
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await;
    connection.close().await?;
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error.into());
    }
    let io = |error: std::io::Error| StoreError::Backup(format!("writing {}: {error}", to.display()));
    std::fs::File::open(&partial)
        .and_then(|file| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&partial, to).map_err(io)?;
    if let Some(folder) = to.parent().filter(|folder| !folder.as_os_str().is_empty()) {
        std::fs::File::open(folder)
            .and_then(|folder| folder.sync_all())
            .map_err(io)?;
    }
    let bytes = std::fs::metadata(to).map_err(io)?.len();
    Ok(Backup {
        path: to.to_path_buf(),
        bytes,
    })
}

/// Where the copy is written before it is complete: `<to>.partial`.
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".partial");
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, test_event};

    #[tokio::test]
    async fn a_backup_taken_while_the_store_is_open_holds_every_committed_event() {
        let folder = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}", folder.path().join("sm8.db").display());
        let live = store::connect(&url).await.unwrap();
        let events: Vec<_> = (0..50).map(|n| test_event(&format!("k{n}"))).collect();
        live.insert_events(&events).await.unwrap();

        let to = folder.path().join("copy.db");
        let backup = backup_sqlite(&url, &to).await.unwrap();
        assert!(backup.bytes > 0);
        assert!(!partial_path(&to).exists());
        live.insert_events(&[test_event("after")]).await.unwrap();

        let restored = store::connect(&format!("sqlite://{}", to.display())).await.unwrap();
        assert_eq!(
            restored.stats("default").await.unwrap().total,
            50,
            "the snapshot, not what came after"
        );
    }

    #[tokio::test]
    async fn a_backup_never_overwrites_a_file_and_needs_a_database() {
        let folder = tempfile::TempDir::new().unwrap();
        let existing = folder.path().join("taken.db");
        std::fs::write(&existing, b"keep me").unwrap();
        let url = format!("sqlite://{}", folder.path().join("sm8.db").display());
        store::connect(&url).await.unwrap();
        let refused = backup_sqlite(&url, &existing).await.unwrap_err().to_string();
        assert!(refused.contains("exists already"), "{refused}");
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

        let missing = format!("sqlite://{}", folder.path().join("none.db").display());
        let refused = backup_sqlite(&missing, &folder.path().join("new.db"))
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("there is no database"), "{refused}");
    }
}
