//! Retry and Catch: which errors a retrier or catcher matches, and how long a retry waits.

use std::time::Duration;

use rand::{rngs::SmallRng, Rng, SeedableRng};

use crate::definition::Retrier;

/// Error names defined by the States language that this interpreter raises or matches.
pub mod errors {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
}

/// Whether an error name is matched by an `ErrorEquals` list (AWS semantics:
/// `States.Runtime` is never retried or caught; `States.ALL` matches any other error;
/// `States.TaskFailed` matches any other error except `States.Timeout`).
pub(crate) fn error_matches(list: &[String], error: &str) -> bool {
    if error == errors::RUNTIME {
        return false;
    }
    list.iter().any(|e| {
        e == error || e == errors::ALL || (e == errors::TASK_FAILED && error != errors::TIMEOUT)
    })
}

/// The wait before retry number `count + 1` of `r`: IntervalSeconds × BackoffRate^count,
/// capped by MaxDelaySeconds, then with FULL jitter a uniform draw from [0, that].
/// `seed` is asked for only when jittering (the caller mixes time and a counter into it,
/// so concurrent branches retrying at the same instant do not draw the same delay).
pub(crate) fn retry_delay(r: &Retrier, count: u32, seed: impl FnOnce() -> u64) -> Duration {
    let exp = i32::try_from(count).unwrap_or(i32::MAX);
    let mut secs = r.interval_seconds as f64 * r.backoff_rate.powi(exp);
    if let Some(max) = r.max_delay_seconds {
        secs = secs.min(max as f64);
    }
    if !secs.is_finite() {
        // Step Functions' own ceiling for a retry interval (one year).
        secs = r.max_delay_seconds.unwrap_or(31_622_400) as f64;
    }
    if r.jitter_full {
        let mut rng = SmallRng::seed_from_u64(seed());
        secs = rng.random_range(0.0..=secs);
    }
    Duration::from_secs_f64(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn error_matching_follows_aws() {
        assert!(error_matches(&list(&["States.ALL"]), "Boom"));
        assert!(error_matches(&list(&["States.ALL"]), "States.Timeout"));
        assert!(!error_matches(&list(&["States.ALL"]), "States.Runtime"));
        assert!(!error_matches(&list(&["States.Runtime"]), "States.Runtime"));
        assert!(error_matches(
            &list(&["States.TaskFailed"]),
            "Lambda.ServiceException"
        ));
        assert!(!error_matches(
            &list(&["States.TaskFailed"]),
            "States.Timeout"
        ));
        assert!(error_matches(&list(&["A", "B"]), "B"));
        assert!(!error_matches(&list(&["A", "B"]), "C"));
    }

    fn retrier(max_delay_seconds: Option<u64>, jitter_full: bool) -> Retrier {
        // The jobnet's Lambda retrier.
        Retrier {
            errors: list(&["Lambda.ServiceException"]),
            interval_seconds: 2,
            max_attempts: 6,
            backoff_rate: 2.0,
            max_delay_seconds,
            jitter_full,
        }
    }

    #[test]
    fn backoff_is_capped_by_max_delay() {
        let r = retrier(Some(60), false);
        let delays: Vec<u64> = (0..6)
            .map(|n| retry_delay(&r, n, || unreachable!("no jitter, no seed")).as_secs())
            .collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60]);
        let r = retrier(None, false);
        assert_eq!(retry_delay(&r, 10, || 0), Duration::from_secs(2048));
        // An overflowing backoff falls back to the cap, then to a year.
        let huge = Retrier {
            backoff_rate: f64::MAX,
            ..retrier(None, false)
        };
        assert_eq!(retry_delay(&huge, 5, || 0), Duration::from_secs(31_622_400));
    }

    #[test]
    fn full_jitter_draws_within_the_backoff() {
        let r = retrier(Some(60), true);
        for (n, cap) in [(0u32, 2.0f64), (3, 16.0), (9, 60.0)] {
            for seed in 0..50u64 {
                let d = retry_delay(&r, n, || seed).as_secs_f64();
                assert!((0.0..=cap).contains(&d), "retry {n}, seed {seed}: {d}");
            }
        }
        // Same seed, same draw: deterministic given the seed.
        assert_eq!(retry_delay(&r, 4, || 7), retry_delay(&r, 4, || 7));
    }
}
