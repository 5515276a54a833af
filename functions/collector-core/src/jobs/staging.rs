//! Staging helpers every loading job shares: the binary COPY into a temporary table, the
//! content hash that decides whether a row is rewritten, the counts of a merge, and the
//! refresh bookkeeping.

use std::pin::Pin;

use sha2::{Digest, Sha256};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use super::{JobError, RowCounts};

/// Makes `stage` an empty temporary table with the `columns` of `table` and opens a binary
/// COPY into it. Write each row's values in the order of `columns` (`types` gives their
/// types), then `finish` the writer; the merge reads from `stage`.
///
/// The table is the session's, kept from one load to the next and emptied at every commit
/// (`ON COMMIT DELETE ROWS`: a truncation in place), instead of being created and dropped
/// by every load: creating a table writes a dozen catalog rows (its columns, its row
/// type and that type's array type, dependencies) and dropping it deletes them again,
/// which cost a 1,000-row load about as much as the rows themselves. A given `stage` name
/// must always be used with the same `columns`.
pub async fn copy_into_stage(
    tx: &Transaction<'_>,
    table: &str,
    stage: &str,
    columns: &str,
    types: &[Type],
) -> Result<Pin<Box<BinaryCopyInWriter>>, JobError> {
    // Emptied first: inside one outer transaction (a replay's dry run, savepoint per job
    // run) the previous load's rows are still there. (Otherwise it is empty: the DELETE
    // reads no page.) One simple-query round trip for both statements.
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT {columns} FROM {table} WITH NO DATA;
         DELETE FROM pg_temp.{stage}"
    ))
    .await?;
    let sink = tx
        .copy_in(&format!("COPY {stage} ({columns}) FROM STDIN BINARY"))
        .await?;
    Ok(Box::pin(BinaryCopyInWriter::new(sink, types)))
}

/// SHA-256 of a row's canonical JSON (field order is the struct's, so it is stable).
pub fn hash_of<T: serde::Serialize>(row: &T) -> Vec<u8> {
    Sha256::digest(serde_json::to_vec(row).expect("row serialises")).to_vec()
}

/// Counts from a merge's `RETURNING (xmax = 0) AS inserted`; staged rows not returned are unchanged.
pub async fn merge_counts(
    tx: &Transaction<'_>,
    merge_sql: &str,
    staged: usize,
) -> Result<RowCounts, JobError> {
    // Without parameters: `query_typed` sends parse, bind and execute at once (one round
    // trip instead of a prepare and an execute).
    let row = tx
        .query_typed_one(
            &format!("WITH merged AS ({merge_sql}) SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"),
            &[],
        )
        .await?;
    let inserted = row.get::<_, i64>(0) as i32;
    let updated = row.get::<_, i64>(1) as i32;
    Ok(RowCounts {
        inserted,
        updated,
        unchanged: staged as i32 - inserted - updated,
        deleted: 0,
    })
}

/// A table whose rows carry `content_hash`, `saved_at` and `run_id` after their data
/// columns, loaded by [`load_hashed`].
pub struct HashedTable {
    pub table: &'static str,
    /// The data columns, in the order [`HashedTable`]'s `values` gives them.
    pub columns: &'static [(&'static str, Type)],
    /// The conflict target (the primary key), e.g. `genre_id`.
    pub key: &'static [&'static str],
}

/// A row's data values, in the order of [`HashedTable::columns`].
pub type Values<R> = for<'r> fn(&'r R) -> Vec<&'r (dyn ToSql + Sync)>;

/// Loads `rows` into `t` observed at `at` for `run_id`: binary COPY into a staging table,
/// then one merge that writes a row only when its content hash changed and no later
/// observation wrote it. Returns inserted / updated / unchanged.
pub async fn load_hashed<R: serde::Serialize>(
    tx: &Transaction<'_>,
    t: &HashedTable,
    rows: &[R],
    values: Values<R>,
    run_id: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<RowCounts, JobError> {
    let names: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
    let columns = format!("{}, content_hash, saved_at, run_id", names.join(", "));
    let mut types: Vec<Type> = t.columns.iter().map(|(_, ty)| ty.clone()).collect();
    types.extend([Type::BYTEA, Type::TIMESTAMPTZ, Type::UUID]);
    let stage = format!("stage_{}", t.table);
    let mut writer = copy_into_stage(tx, t.table, &stage, &columns, &types).await?;
    for r in rows {
        let hash = hash_of(r);
        let mut v = values(r);
        v.extend([&hash as &(dyn ToSql + Sync), &at, &run_id]);
        writer.as_mut().write(&v).await?;
    }
    writer.as_mut().finish().await?;
    let set: Vec<String> = names
        .iter()
        .copied()
        .filter(|n| !t.key.contains(n))
        .chain(["content_hash", "saved_at", "run_id"])
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    merge_counts(
        tx,
        &format!(
            "INSERT INTO {table} AS t ({columns})
             SELECT {columns} FROM {stage}
             ON CONFLICT ({key}) DO UPDATE SET {set}
             WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash AND t.saved_at <= EXCLUDED.saved_at
             RETURNING (xmax = 0) AS inserted",
            table = t.table,
            key = t.key.join(", "),
            set = set.join(", "),
        ),
        rows.len(),
    )
    .await
}

/// Marks `keys` of `entity` ('item', 'genre', 'tag') as fetched at `at`, in one
/// statement; a later mark is kept (a replay never makes data look older than it is).
pub async fn mark_refreshed(
    tx: &Transaction<'_>,
    entity: &str,
    keys: &[String],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), JobError> {
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO etl_refresh (entity, key, checked_at)
         SELECT $1, k, $3 FROM unnest($2::text[]) AS k
         ON CONFLICT (entity, key) DO UPDATE SET checked_at = greatest(etl_refresh.checked_at, EXCLUDED.checked_at)",
        &[&entity, &keys, &at],
    )
    .await?;
    Ok(())
}
