//! `sm8-webhooks backup` against a serving node, and a restore: a new node started on the copy serves what was
//! acknowledged before the backup began.

use crate::common::{seed_event, serve_args, signed_delivery, spawn_app, spawn_with};
use server::commands::{backup, BackupArgs};
use server::store::DatabaseArgs;

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acknowledged_event() {
    let app = spawn_app().await;
    for n in 0..40 {
        let posted = app.post_signed(&seed_event("job", &format!("job-{n}"), "Quote")).await;
        assert_eq!(posted.status(), 200);
    }
    // Deliveries keep arriving while the copy is taken.
    let arriving = tokio::spawn({
        let (client, url) = (reqwest::Client::new(), app.url("/api/webhooks/sm8"));
        async move {
            for n in 0..40 {
                let body = seed_event("job", &format!("late-{n}"), "Quote");
                let answer = signed_delivery(&client, &url, body).send().await.unwrap();
                assert_eq!(answer.status(), 200);
            }
        }
    });
    let folder = tempfile::TempDir::new().unwrap();
    let copy = folder.path().join("backup.db");
    backup(BackupArgs {
        database: DatabaseArgs {
            database_url: app.database_url.clone(),
        },
        to: copy.clone(),
    })
    .await
    .unwrap();
    arriving.await.unwrap();

    // Restore: a node started on the copy.
    let mut args = serve_args(&format!("sqlite://{}", copy.display()));
    args.processor.workers = 0;
    let restored = spawn_with(args, folder).await;
    let total = restored.manage_json("action=stats").await["total"].as_i64().unwrap();
    assert!((40..=80).contains(&total), "{total} events restored");
    let listed = restored.manage_json("action=events&limit=500").await;
    let uuids: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["object_uuid"].as_str())
        .collect();
    for n in 0..40 {
        assert!(
            uuids.contains(&format!("job-{n}").as_str()),
            "job-{n} was acknowledged before the backup"
        );
    }
}

#[tokio::test]
async fn postgres_and_in_memory_databases_are_refused_with_what_to_do_instead() {
    let folder = tempfile::TempDir::new().unwrap();
    let refuse = |database_url: &str| BackupArgs {
        database: DatabaseArgs {
            database_url: database_url.into(),
        },
        to: folder.path().join("x.db"),
    };
    let postgres = backup(refuse("postgres://user:secret@db/sm8"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        postgres.contains("pg_dump") && !postgres.contains("secret"),
        "{postgres}"
    );
    let memory = backup(refuse("sqlite::memory:")).await.unwrap_err().to_string();
    assert!(memory.contains("in-memory"), "{memory}");
}
