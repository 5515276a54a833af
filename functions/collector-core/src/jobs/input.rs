//! The event of every job that works in an existing run (Item, Genre, Tag, IsActive).

use uuid::Uuid;

use crate::jobs::Job;

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
        parse_event(job, event)
    }
}

/// Parses a job event, which must be a JSON object: serde alone would also read `null`
/// as "no fields" and `["<uuid>"]` as a struct given by position.
pub fn parse_event<T: serde::de::DeserializeOwned>(
    job: Job,
    event: serde_json::Value,
) -> Result<T, JobError> {
    if !event.is_object() {
        let shape = match &event {
            serde_json::Value::Null => "null",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            _ => "a boolean",
        };
        return Err(JobError::InvalidInput(format!(
            "{job} event must be a JSON object like {{\"run_id\": \"<uuid>\"}}, got {shape}"
        )));
    }
    serde_json::from_value(event).map_err(|e| JobError::InvalidInput(format!("{job} event: {e}")))
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
        for bad in [
            serde_json::Value::Null,
            serde_json::json!([]),
            serde_json::json!([id.to_string()]),
        ] {
            let e = RunInput::from_event(Job::IsActive, bad.clone()).unwrap_err();
            assert!(
                e.to_string().contains("must be a JSON object"),
                "{bad}: {e}"
            );
        }
    }
}
