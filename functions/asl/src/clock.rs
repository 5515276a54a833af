//! Time: real, or virtual for tests.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The interpreter's source of time (Wait states, retry delays, context timestamps).
#[async_trait]
pub trait Clock: Send + Sync {
    async fn sleep(&self, d: Duration);
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time and real sleeping (tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

#[async_trait]
impl Clock for RealClock {
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A virtual clock for tests: `sleep` returns at once (after yielding to the
/// scheduler) and advances `now` by the requested duration; every sleep is recorded.
#[derive(Debug)]
pub struct InstantClock {
    now: Mutex<DateTime<Utc>>,
    sleeps: Mutex<Vec<Duration>>,
}

impl Default for InstantClock {
    fn default() -> Self {
        Self::new()
    }
}

impl InstantClock {
    /// Starts at the current wall-clock time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// Starts at a fixed instant (deterministic context timestamps).
    pub fn starting_at(t: DateTime<Utc>) -> Self {
        InstantClock {
            now: Mutex::new(t),
            sleeps: Mutex::new(Vec::new()),
        }
    }

    /// Every duration passed to `sleep`, in call order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().expect("clock lock").clone()
    }

    /// Moves virtual time forward without recording a sleep.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    }
}

#[async_trait]
impl Clock for InstantClock {
    async fn sleep(&self, d: Duration) {
        self.sleeps.lock().expect("clock lock").push(d);
        self.advance(d);
        tokio::task::yield_now().await;
    }

    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
}
