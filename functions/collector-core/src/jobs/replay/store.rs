//! Replay's ledger SQL: one run with trigger `replay` per source run, on the source run's
//! JST date, so `collector runs` shows what was rebuilt and from what.

use tokio_postgres::Transaction;
use uuid::Uuid;

use crate::db::ledger::Run;
use crate::jobs::JobError;
use crate::rawstore::Manifest;

/// Opens the replay run for the run that wrote `manifest`.
pub async fn open_replay_run(tx: &Transaction<'_>, manifest: &Manifest) -> Result<Run, JobError> {
    let run_id = Uuid::new_v4();
    let row = tx
        .query_one(
            "INSERT INTO etl_runs (run_id, env, run_date, trigger, started_at, lease_owner, lease_expires_at)
             VALUES ($1, $2, $3, 'replay', now(), $4, now() + interval '1 hour')
             RETURNING started_at",
            &[&run_id, &manifest.env, &manifest.run_date, &crate::db::lease::owner()],
        )
        .await?;
    tracing::info!(%run_id, source = %manifest.run_id, date = %manifest.run_date, "replay run opened");
    Ok(Run {
        run_id,
        env: manifest.env.clone(),
        run_date: manifest.run_date,
        status: "running".into(),
        started_at: row.get(0),
    })
}

/// Ends a replay run: failed (`ReplayIncomplete`) when objects were missing or damaged.
pub async fn close_replay_run(
    tx: &Transaction<'_>,
    run_id: Uuid,
    problems: usize,
) -> Result<(), JobError> {
    let (status, error_type, message) = if problems == 0 {
        ("succeeded", None, None)
    } else {
        (
            "failed",
            Some("ReplayIncomplete"),
            Some(format!("{problems} objects missing or damaged, not loaded")),
        )
    };
    tx.execute(
        "UPDATE etl_runs SET status = $2, finished_at = now(), error_type = $3, error_message = $4,
             lease_owner = NULL, lease_expires_at = NULL
         WHERE run_id = $1",
        &[&run_id, &status, &error_type, &message],
    )
    .await?;
    Ok(())
}

/// The newest `snapshot_date` in `rakuten_rankings`, if any.
pub async fn newest_snapshot_date(
    tx: &Transaction<'_>,
) -> Result<Option<chrono::NaiveDate>, JobError> {
    Ok(tx
        .query_one("SELECT max(snapshot_date) FROM rakuten_rankings", &[])
        .await?
        .get(0))
}
