//! Every sample event in `events/` is accepted by the handler it is for (the same
//! parsers the Lambda binaries use), so `sam local invoke` / `cargo lambda invoke` with
//! them fails only for reasons of the environment, never of the event's shape.

use collector_core::jobs::guard::GuardRequest;
use collector_core::jobs::notify::RunSummary;
use collector_core::jobs::ranking::RankingInput;
use collector_core::jobs::Job;
use collector_core::jobs::RunInput;
use serde_json::Value;

fn event(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events/").to_string() + name;
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("JSON")
}

#[test]
fn sample_events_parse_for_their_handlers() {
    RankingInput::from_event(event("ranking.json")).expect("ranking.json");
    RunInput::from_event(Job::Item, event("item.json")).expect("item.json");
    RunInput::from_event(Job::IsActive, event("is-active.json")).expect("is-active.json");
    for name in ["genre.json", "tag.json"] {
        let e = event(name);
        assert!(
            e["run_id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .is_some(),
            "{name}"
        );
    }
    let guard = GuardRequest::from_event(&event("guard.json")).expect("guard.json");
    assert_eq!(guard.start_at, "ranking");
    assert!(guard.state_machine_arn.is_some());
    for name in ["notify-success.json", "notify-failure.json"] {
        RunSummary::from_event(&event(name), "dev").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The jobnet inputs are Guard's `input`.
    for name in ["jobnet-start.json", "jobnet-resume-item.json"] {
        let wrapped = serde_json::json!({"input": event(name), "state_machine_arn": "arn:aws:states:ap-northeast-1:1:stateMachine:x", "execution_arn": "arn:aws:states:ap-northeast-1:1:execution:x:y", "max_waits": "1"});
        GuardRequest::from_event(&wrapped).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
