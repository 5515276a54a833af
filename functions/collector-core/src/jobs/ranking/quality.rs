//! Quality checks on a day's ranking snapshots (SPEC §11), run inside the Ranking load
//! (live and replayed alike) and kept in the job run's output document: contiguous ranks,
//! one item at two ranks, a row count that fell by more than half since the target's
//! previous complete snapshot, stale and incomplete targets, and pages of two builds.
//! Severe findings (an item at two ranks, two builds after the bounded re-reads) fail the
//! job with `DataQualityFailed`; the day's rows stay stored, flagged, as evidence.

use std::fmt;

/// One finding on one target's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// `genre 0 daily`.
    pub target: String,
    pub check: Check,
    /// Severe findings fail the Ranking job.
    pub severe: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Ranks 1..N have a gap, or pages failed: the snapshot is incomplete.
    Incomplete,
    /// The same item code at two ranks of one snapshot.
    DuplicateItem,
    /// Fewer than half the rows of the target's previous complete snapshot.
    RowCountDrop,
    /// Same `lastBuildDate` as the previous snapshot: the ranking was not rebuilt.
    Stale,
    /// Pages of two builds even after re-reading the target: nothing of it was stored.
    MixedBuild,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Incomplete => "incomplete",
            Check::DuplicateItem => "duplicate_item",
            Check::RowCountDrop => "row_count_drop",
            Check::Stale => "stale",
            Check::MixedBuild => "mixed_build",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.severe { "SEVERE " } else { "" };
        write!(
            f,
            "{}: {severity}{}: {}",
            self.target,
            self.check.as_str(),
            self.detail
        )
    }
}

/// `genre 0 daily`.
pub fn target_label(genre_id: i64, period: &str) -> String {
    format!("genre {genre_id} {period}")
}

/// A row count is flagged when it is less than half of the previous complete snapshot's.
pub fn dropped_by_more_than_half(previous: i32, now: i32) -> bool {
    previous > 0 && i64::from(now) * 2 < i64::from(previous)
}

/// The severe findings as one line for the job's error, `None` when there are none.
pub fn severe_summary(findings: &[Finding]) -> Option<String> {
    let severe: Vec<String> = findings
        .iter()
        .filter(|f| f.severe)
        .map(ToString::to_string)
        .collect();
    (!severe.is_empty()).then(|| severe.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_summaries() {
        assert!(dropped_by_more_than_half(1000, 499));
        assert!(!dropped_by_more_than_half(1000, 500));
        assert!(!dropped_by_more_than_half(0, 0));
        let f = Finding {
            target: target_label(0, "daily"),
            check: Check::DuplicateItem,
            severe: true,
            detail: "shop:1 at ranks 3, 17".into(),
        };
        assert_eq!(
            f.to_string(),
            "genre 0 daily: SEVERE duplicate_item: shop:1 at ranks 3, 17"
        );
        let mild = Finding {
            severe: false,
            check: Check::Stale,
            ..f.clone()
        };
        assert_eq!(severe_summary(std::slice::from_ref(&mild)), None);
        assert_eq!(
            severe_summary(&[mild, f]).unwrap(),
            "genre 0 daily: SEVERE duplicate_item: shop:1 at ranks 3, 17"
        );
    }
}
