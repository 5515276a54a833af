//! The event of every job that works in an existing run (Item, Genre, Tag, IsActive).

use uuid::Uuid;

use crate::db::ledger::Job;

use super::JobError;

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// The run to work in; Guard (or the Ranking job) opened it.
    pub run_id: Uuid,
}

impl RunInput {
    /// Parses `job`'s event, with an `InvalidInput` error that says what is wrong.
    pub fn from_event(job: Job, event: serde_json::Value) -> Result<Self, JobError> {
        serde_json::from_value(event)
            .map_err(|e| JobError::InvalidInput(format!("{job} event: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked() {
        let id = Uuid::new_v4();
        assert_eq!(
            RunInput::from_event(Job::Tag, serde_json::json!({"run_id": id}))
                .unwrap()
                .run_id,
            id
        );
        let e = RunInput::from_event(Job::Genre, serde_json::json!({})).unwrap_err();
        assert_eq!(e.error_type(), "InvalidInput");
        assert!(
            e.to_string()
                .contains("genre event: missing field `run_id`"),
            "{e}"
        );
        let e =
            RunInput::from_event(Job::Item, serde_json::json!({"run_id": id, "x": 1})).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(RunInput::from_event(Job::IsActive, serde_json::Value::Null).is_err());
    }
}
