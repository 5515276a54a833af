//! The job output document: small JSON the state machine routes on and the CLI prints
//! with `--output json`. Counts only, never the data itself.

use std::collections::BTreeMap;

use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnitCounts {
    pub attempted: i32,
    pub succeeded: i32,
    pub failed: i32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowCounts {
    pub inserted: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub deleted: i32,
}

impl RowCounts {
    pub fn add(&mut self, o: RowCounts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobOutput {
    pub job: String,
    pub run_id: Uuid,
    pub attempt: i32,
    /// `succeeded` or `failed`.
    pub status: String,
    /// False when a time-boxed job stopped before finishing and must be invoked again.
    pub done: bool,
    pub units: UnitCounts,
    pub failure_rate: f64,
    pub threshold: f64,
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    /// Table name → rows inserted/updated/unchanged/deleted.
    pub rows: BTreeMap<String, RowCounts>,
    pub raw_written: i32,
    pub raw_identical: i32,
    pub manifest_key: Option<String>,
    pub snapshot_date: Option<chrono::NaiveDate>,
    pub duration_ms: i64,
    /// What the job could not deliver completely (Ranking: incomplete snapshots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
    /// Quality findings on the data (Ranking: SPEC §11 checks); severe ones fail the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<crate::jobs::ranking::Finding>,
    /// Job-specific counts, e.g. the Item job's `remaining`, IsActive's `activated`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, i64>,
}

impl JobOutput {
    /// The error of a job run that loaded its rows but failed a severe quality check.
    pub fn quality_violation(&self) -> Option<super::JobError> {
        (self.status == "failed")
            .then(|| crate::jobs::ranking::quality::severe_summary(&self.quality))
            .flatten()
            .map(super::JobError::DataQualityFailed)
    }

    pub fn total_rows(&self) -> RowCounts {
        let mut t = RowCounts::default();
        for r in self.rows.values() {
            t.add(*r);
        }
        t
    }
}
