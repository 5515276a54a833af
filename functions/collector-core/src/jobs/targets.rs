//! "This run's items": the follow-on policy every job after Ranking works from.
//!
//! An item belongs to a run when a ranking row of that run was saved at or after the
//! run's Ranking `job_start_at` (saved_at >= job_start_at). Unchanged ranking rows are
//! not rewritten, so a second run on the same day over unchanged rankings has no new
//! items — which is what keeps a second sequence from rewriting anything.

/// A CTE `ranked(item_code)` of the items ranked in run `$1`. Use as
/// `format!("WITH {RANKED_ITEMS_CTE} SELECT … FROM ranked …")`.
pub const RANKED_ITEMS_CTE: &str = "ranked AS (
    SELECT DISTINCT r.item_code
    FROM rakuten_rankings r
    JOIN etl_job_runs j ON j.run_id = r.run_id AND j.job = 'ranking'
    WHERE r.run_id = $1 AND r.saved_at >= j.job_start_at
)";
