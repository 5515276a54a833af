//! The request budget shared through PostgreSQL by every process that uses one Rakuten
//! application ID — Genre and Tag running at the same time in two Lambdas, a manual
//! rerun overlapping a scheduled run, or two jobs in one local process.
//!
//! **Send windows, booked in one round trip.** `etl_rate_slots` keeps, per application
//! ID (keyed by a hash of it), the end of the last *send window* handed out. A request
//! books the next window with one atomic upsert:
//! `slot = greatest(last_end + interval, now)`, `end = slot + window`, on the database
//! server's clock, and returns `slot`, `end` and that `now`. The process maps them onto
//! its own monotonic clock: it may send from `reply_received + (slot - now)` (the server
//! read `now` before the reply arrived, so this is never early) until
//! `query_sent + (end - now)` (the server read `now` after the query left, so this is
//! never late). Any two requests then go out at least one interval apart, whatever the
//! database round-trip time: the next window opens one interval after this one closes.
//! The client checks the deadline at the moment it sends; a process that woke up late
//! hands its window back (`missed`) and books again: when nobody booked after it, the
//! database gives it a window starting now (or at its old start, if that is still to
//! come: that one was already clear of the previous request), otherwise one after the
//! last. The window adapts to the measured
//! round-trip time, so a slow database widens it instead of missing every time. The
//! client reports each send ([`Pacer::sent`]); when this process's window is still the
//! last booked, its next window is spaced from that send rather than from the window's
//! end, so a process running alone does not pay for the window's slack; and since the
//! booking reads (with the row locked) which window was the last before, such a process
//! may send one interval after its previous send on its own clock, without the mapping's
//! allowance of up to a round trip at each end: alone, it keeps the pace exactly.
//!
//! **One connection.** The pacer uses the job's connection (the `AppContext` slot): it
//! takes the connection between the job's statements and never inside a transaction. If
//! the job holds it for longer than [`SHARED_WAIT`], the pacer opens a spare connection
//! of its own (once, lazily), so a cold start opens exactly one.
//!
//! If the database cannot be reached the pacer logs a warning, paces within this process
//! only (the client's own limiter) and tries the database again after [`DB_RETRY_AFTER`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rakuten_client::{Pacer, Slot};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

use crate::db::{self, Db, SharedDb};

/// Default send window: room for the wake-up delay of a busy host. Each window costs
/// its length once in throughput (windows are one interval apart).
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(10);
/// Widest window the pacer widens to (a database slower than this per round trip
/// cannot pace anything usefully).
const MAX_WINDOW: Duration = Duration::from_secs(2);
/// Kept off both ends of a window: the server's clock has microsecond resolution, and
/// server and host clocks may run a little apart.
const MARGIN: Duration = Duration::from_millis(1);
/// How long the pacer waits for the job's connection before using a spare one.
pub const SHARED_WAIT: Duration = Duration::from_millis(200);
/// After the database failed, how long to pace within this process only.
pub const DB_RETRY_AFTER: Duration = Duration::from_secs(30);

/// One atomic upsert books the next window: `$1` budget key, `$2` interval (µs), `$3`
/// window (µs), `$4`/`$5` the end/start (µs since epoch) of a missed window of ours, if
/// any: when it is still the last one booked, the new window starts at
/// `greatest(now, its start)` (its start is already one interval clear of the previous
/// window; a window can be missed before it opens, when it is too short). `$6`/`$7`: the
/// end of our last window a request went out in and the latest server time that send
/// can have had: when that window is still the last one booked, the next starts one
/// interval after the send instead of after the window's end (the window's slack is
/// then not lost). Returns the new window's end, the server's `now` and the end of the
/// window booked before this one (`NULL` when there was none), in µs since the epoch. That
/// last one is read with the row locked (`FOR UPDATE`: under concurrent bookings it is the
/// version the upsert then updates), so it tells exactly whether anyone booked since our
/// last send.
const BOOK: &str = "
WITH now AS (SELECT clock_timestamp() AS t),
     old AS MATERIALIZED (SELECT last_sent_at FROM etl_rate_slots WHERE budget_key = $1 FOR UPDATE)
INSERT INTO etl_rate_slots AS s (budget_key, last_sent_at)
SELECT $1, t + $3::int8 * interval '1 microsecond' FROM now LEFT JOIN old ON true
ON CONFLICT (budget_key) DO UPDATE SET last_sent_at =
    CASE WHEN $4::int8 IS NOT NULL
              AND (extract(epoch FROM s.last_sent_at) * 1000000)::int8 = $4::int8
         THEN greatest((SELECT t FROM now), 'epoch'::timestamptz + $5::int8 * interval '1 microsecond')
         WHEN $6::int8 IS NOT NULL
              AND (extract(epoch FROM s.last_sent_at) * 1000000)::int8 = $6::int8
         THEN greatest((SELECT t FROM now),
                       'epoch'::timestamptz + ($7::int8 + $2::int8) * interval '1 microsecond')
         ELSE greatest(s.last_sent_at + $2::int8 * interval '1 microsecond', (SELECT t FROM now))
    END + $3::int8 * interval '1 microsecond'
RETURNING (extract(epoch FROM s.last_sent_at) * 1000000)::int8,
          (SELECT (extract(epoch FROM t) * 1000000)::int8 FROM now),
          (SELECT (extract(epoch FROM last_sent_at) * 1000000)::int8 FROM old)";

/// The types of [`BOOK`]'s parameters.
const BOOK_TYPES: [Type; 7] = [
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

pub struct PgPacer {
    budget_key: String,
    interval: Duration,
    base_window: Duration,
    /// The connection the job uses too.
    shared: Arc<SharedDb>,
    /// Opened only when the job keeps the shared one busy.
    spare: SharedDb,
    /// Current window (µs): grows after a miss, shrinks back towards `base_window`.
    window_us: AtomicU64,
    /// Largest recent round trip (µs), decaying.
    rtt_us: AtomicU64,
    /// Until when the database is not tried (µs since `epoch`), after a failure.
    down_until_us: AtomicU64,
    warned: AtomicBool,
    epoch: Instant,
    /// Round trips made (for tests and the benchmark: at most one per request unless a
    /// window was missed).
    round_trips: AtomicU64,
    /// Windows handed back because the client woke up after their deadline.
    missed: AtomicU64,
    /// Recent windows' (end, local instant the booking query left, server `now`), to map
    /// a send instant onto the server's clock.
    anchors: std::sync::Mutex<std::collections::VecDeque<(i64, Instant, i64)>>,
    /// Our last window used: its end, the latest server time of the send, and the send's
    /// local instant.
    last_send: std::sync::Mutex<Option<LastSend>>,
}

/// The window of this pacer's latest send.
#[derive(Debug, Clone, Copy)]
struct LastSend {
    /// The window's end (µs since the epoch, server clock).
    end: i64,
    /// The latest server time the send can have had (µs since the epoch).
    upper: i64,
    /// The send instant the client recorded.
    at: Instant,
}

/// Windows remembered for [`Pacer::sent`] (more than requests in flight at once).
const ANCHORS: usize = 16;

impl PgPacer {
    /// A pacer with a database connection of its own (opened on first use).
    pub fn new(
        database_url: SecretString,
        application_id: &SecretString,
        requests_per_second: f64,
    ) -> Self {
        Self::sharing(
            Arc::new(SharedDb::new(database_url.clone())),
            database_url,
            application_id,
            requests_per_second,
        )
    }

    /// A pacer using `shared` (the job's connection slot; connected on first use by
    /// whichever side needs it first).
    pub fn sharing(
        shared: Arc<SharedDb>,
        database_url: SecretString,
        application_id: &SecretString,
        requests_per_second: f64,
    ) -> Self {
        let digest = Sha256::digest(application_id.expose_secret().as_bytes());
        Self {
            budget_key: format!("app-{}", &hex::encode(digest)[..16]),
            interval: Duration::from_secs_f64(1.0 / requests_per_second),
            base_window: DEFAULT_WINDOW,
            shared,
            spare: SharedDb::new(database_url),
            window_us: AtomicU64::new(DEFAULT_WINDOW.as_micros() as u64),
            rtt_us: AtomicU64::new(0),
            down_until_us: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            epoch: Instant::now(),
            round_trips: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            anchors: Default::default(),
            last_send: Default::default(),
        }
    }

    /// Sets the base send window (clamped to 1 ms..=2 s).
    pub fn with_window(mut self, window: Duration) -> Self {
        let w = window.clamp(Duration::from_millis(1), MAX_WINDOW);
        self.base_window = w;
        self.window_us = AtomicU64::new(w.as_micros() as u64);
        self
    }

    pub fn budget_key(&self) -> &str {
        &self.budget_key
    }

    /// The smallest gap between two sends on this budget.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Database round trips made so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Windows handed back (missed) so far.
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    fn window(&self, missed: bool) -> Duration {
        let base = self.base_window.as_micros() as u64;
        let rtt = self.rtt_us.load(Ordering::Relaxed);
        let current = self.window_us.load(Ordering::Relaxed);
        // After a miss double it; otherwise decay towards the base. Always leave room
        // for twice the recent round trip (the part of the window the mapping uses up).
        let next = if missed {
            current.saturating_mul(2)
        } else {
            (current * 7 / 8).max(base)
        };
        let next = next
            .max(base + 2 * rtt + 2 * MARGIN.as_micros() as u64)
            .min(MAX_WINDOW.as_micros() as u64);
        self.window_us.store(next, Ordering::Relaxed);
        Duration::from_micros(next)
    }

    async fn book(&self, missed: Option<&Slot>) -> Result<Slot, db::DbError> {
        let window = self.window(missed.is_some());
        let held_end: Option<i64> = missed.and_then(|s| s.token).map(|(_, end)| end);
        let held_start: Option<i64> = missed.and_then(|s| s.token).map(|(start, _)| start);
        let interval_us = self.interval.as_micros() as i64;
        let window_us = window.as_micros() as i64;
        let last = *self.last_send.lock().unwrap_or_else(|e| e.into_inner());
        let (last_end, last_upper) = (last.map(|l| l.end), last.map(|l| l.upper));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &self.budget_key,
            &interval_us,
            &window_us,
            &held_end,
            &held_start,
            &last_end,
            &last_upper,
        ];
        // The job's connection when it is free (or soon), else the spare one.
        let (sent, row, received) = match self.shared.get_within(SHARED_WAIT).await {
            Some(db) => self.query(&*db?, &params).await?,
            None => self.query(&*self.spare.get().await?, &params).await?,
        };
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let rtt = (received - sent).as_micros() as u64;
        let prev = self.rtt_us.load(Ordering::Relaxed);
        self.rtt_us
            .store(rtt.max(prev - prev / 8), Ordering::Relaxed);

        let end_us: i64 = row.get(0);
        let now_us: i64 = row.get(1);
        let start_us = end_us - window.as_micros() as i64;
        let opens_in = Duration::from_micros(start_us.saturating_sub(now_us).max(0) as u64);
        let closes_in = Duration::from_micros(end_us.saturating_sub(now_us).max(0) as u64);
        // Nobody booked since our last send (the window before this one is the one we sent
        // in): the server placed this window one interval after an upper bound of that
        // send, so it is at least that far from it, and every other booking is older
        // still. Then one interval after the send on our own clock is enough: the server
        // mapping's allowance of up to a round trip at each end is not needed, and a
        // process running alone keeps the pace exactly. Later bookings are kept clear by
        // the deadline, which is unchanged.
        let old_end: Option<i64> = row.get(2);
        let own_last = last.filter(|l| missed.is_none() && old_end == Some(l.end));
        let not_before = match own_last {
            Some(l) => (l.at + self.interval).min(received + opens_in + MARGIN),
            None => received + opens_in + MARGIN,
        };
        // `checked_sub` fails only when the window is shorter than the margin; then the
        // deadline is already past and the client books again with a wider window.
        let deadline = (sent + closes_in).checked_sub(MARGIN).unwrap_or(sent);
        {
            let mut anchors = self.anchors.lock().unwrap_or_else(|e| e.into_inner());
            if anchors.len() >= ANCHORS {
                anchors.pop_front();
            }
            anchors.push_back((end_us, sent, now_us));
        }
        Ok(Slot {
            not_before,
            deadline: Some(deadline),
            token: Some((start_us, end_us)),
        })
    }

    /// Runs the booking on `db`; returns the local instants around the round trip with
    /// the row.
    async fn query(
        &self,
        db: &Db,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(Instant, tokio_postgres::Row, Instant), db::DbError> {
        let client = &db.client;
        // Parameters sent with their types: parse, bind and execute go in one message
        // batch, so the booking is one round trip (a named statement would be two: prepare,
        // then execute) and `sent`..`received` brackets only the query that reads `now`.
        let typed: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> = params
            .iter()
            .zip(BOOK_TYPES)
            .map(|(p, t)| (*p, t))
            .collect();
        let sent = Instant::now();
        let row = client.query_typed_one(BOOK, &typed).await?;
        let received = Instant::now();
        Ok((sent, row, received))
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

impl Pacer for PgPacer {
    fn sent(&self, slot: &Slot, at: Instant) {
        let Some((_, end)) = slot.token else { return };
        let anchor = self
            .anchors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|a| a.0 == end)
            .copied();
        if let Some((_, sent, now_us)) = anchor {
            // The server read `now` after `sent`: this bound is never early.
            let upper = now_us + at.saturating_duration_since(sent).as_micros() as i64;
            let mut last = self.last_send.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|l| l.end < end) {
                *last = Some(LastSend { end, upper, at });
            }
        }
    }

    fn reserve<'a>(
        &'a self,
        missed: Option<&'a Slot>,
    ) -> Pin<Box<dyn Future<Output = Slot> + Send + 'a>> {
        Box::pin(async move {
            if missed.is_some() {
                self.missed.fetch_add(1, Ordering::Relaxed);
            }
            if self.now_us() < self.down_until_us.load(Ordering::Relaxed) {
                return Slot::unpaced();
            }
            match self.book(missed).await {
                Ok(slot) => {
                    if self.warned.swap(false, Ordering::Relaxed) {
                        tracing::info!("shared request budget reachable again");
                    }
                    slot
                }
                Err(e) => {
                    let until = self.now_us() + DB_RETRY_AFTER.as_micros() as u64;
                    self.down_until_us.store(until, Ordering::Relaxed);
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(error = %e, retry_in_s = DB_RETRY_AFTER.as_secs(), "shared request budget unavailable; pacing within this process only");
                    }
                    Slot::unpaced()
                }
            }
        })
    }
}
