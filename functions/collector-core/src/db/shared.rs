//! The process's one database connection: opened on first use (a cold start connects
//! only when the first statement needs it) and reopened when the server, a pooler or the
//! watchdog ended it, which a warm Lambda finds after idling. The job and the pacer share
//! it; holders get a [`Db`], never an empty slot.

use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::{connect, Db, DbError};

/// A borrowed connection; other users wait until it is dropped.
pub type DbGuard<'a> = MappedMutexGuard<'a, Db>;

pub struct SharedDb {
    url: SecretString,
    slot: Mutex<Option<Db>>,
}

impl SharedDb {
    /// Not connected yet: the first [`SharedDb::get`] connects.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            slot: Mutex::new(None),
        }
    }

    /// The connection, (re)connected first when it is not open.
    pub async fn get(&self) -> Result<DbGuard<'_>, DbError> {
        self.open(self.slot.lock().await).await
    }

    /// As [`SharedDb::get`], unless another holder keeps it longer than `wait`: then
    /// `None` (the pacer then books on a spare connection rather than queue behind a load).
    pub async fn get_within(&self, wait: Duration) -> Option<Result<DbGuard<'_>, DbError>> {
        let slot = match self.slot.try_lock() {
            Ok(g) => g,
            Err(_) => tokio::time::timeout(wait, self.slot.lock()).await.ok()?,
        };
        Some(self.open(slot).await)
    }

    async fn open<'a>(&self, mut slot: MutexGuard<'a, Option<Db>>) -> Result<DbGuard<'a>, DbError> {
        // `Db::is_closed` also sees a connection the watchdog ended (a frozen server).
        let db = match slot.take() {
            Some(db) if !db.is_closed() => db,
            _ => connect(&self.url).await?,
        };
        Ok(MutexGuard::map(slot, |s| s.insert(db)))
    }
}
