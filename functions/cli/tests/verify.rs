//! `collector verify` as an operator runs it: exit 0 when every manifest entry matches,
//! 1 naming each missing or damaged object (or when nothing matches), 2 on bad arguments.
//! It needs no database: nothing here runs PostgreSQL.

use std::path::Path;
use std::process::Output;

use collector_core::rawstore::{ManifestEntry, PutOutcome, RawKeys};
use ichiba_collector_tests::{collector_command, manifest_of, text};
use uuid::Uuid;

fn collector(raw: &Path, args: &[&str]) -> Output {
    let store = format!("file://{}", raw.display());
    let env = [
        ("APP_ENV", "local"),
        // A database nobody listens on: verify must not need it.
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none"),
        ("RAW_STORE", store.as_str()),
    ];
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env);
    cmd.args(args).output().expect("run collector")
}

/// `collector ARGS` on `raw` exits with `code`.
fn assert_exit(raw: &Path, args: &[&str], code: i32) -> Output {
    let out = collector(raw, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        text(&out.stderr)
    );
    out
}

/// Writes a job run's objects and manifest straight into the directory layout.
fn stored_run(raw: &Path, job: &str, run_id: Uuid, bodies: &[&[u8]]) -> Vec<String> {
    let keys = RawKeys::new(
        "local",
        match job {
            "ranking" => collector_core::jobs::Job::Ranking,
            _ => collector_core::jobs::Job::Item,
        },
        "2026-11-23".parse().unwrap(),
        run_id,
        1,
    );
    let mut objects = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let key = keys.unit(&format!("unit-{i:02}"));
        let path = raw.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        objects.push(ManifestEntry::new(
            key,
            format!("unit {i}"),
            body,
            1,
            PutOutcome::Created,
        ));
    }
    let (date, t) = (
        "2026-11-23".parse().unwrap(),
        "2026-11-23T01:00:00Z".parse().unwrap(),
    );
    let manifest = manifest_of(job, run_id, date, t, objects.clone());
    std::fs::write(
        raw.join(keys.manifest()),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    objects.into_iter().map(|o| o.key).collect()
}

#[test]
fn verify_passes_then_names_each_missing_or_damaged_object() {
    let raw = tempfile::tempdir().unwrap();
    let run_id = Uuid::new_v4();
    let ranking = stored_run(raw.path(), "ranking", run_id, &[b"{\"p\":1}", b"{\"p\":2}"]);
    let items = stored_run(raw.path(), "item", run_id, &[b"{\"i\":1}", b"{\"i\":2}"]);
    let run = run_id.to_string();

    for args in [
        vec!["verify", "--date", "2026-11-23"],
        vec!["verify", "--run-id", run.as_str()],
        vec![
            "verify",
            "--run-id",
            run.as_str(),
            "--date",
            "2026-11-23",
            "--env",
            "local",
        ],
    ] {
        let out = assert_exit(raw.path(), &args, 0);
        let stdout = text(&out.stdout);
        assert!(stdout.contains("2 manifests, 4 objects"), "{stdout}");
    }

    // One byte changed in a ranking page, an item response deleted.
    let damaged = raw.path().join(&ranking[1]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[2] = b'q';
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::remove_file(raw.path().join(&items[0])).unwrap();
    let out = collector(raw.path(), &["verify", "--run-id", &run]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains(&format!("damaged: {}: SHA-256", ranking[1])),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("missing: {}", items[0])),
        "{stdout}"
    );
    assert!(stderr.contains("1 damaged, 1 missing"), "{stderr}");

    let out = collector(
        raw.path(),
        &["verify", "--run-id", &run, "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["manifests"][0]["problems"][0]["problem"],
        "sha256_mismatch"
    );
    assert_eq!(doc["manifests"][1]["problems"][0]["problem"], "missing");
}

#[test]
fn verify_says_when_nothing_matches_and_rejects_bad_arguments() {
    let raw = tempfile::tempdir().unwrap();
    let out = collector(raw.path(), &["verify", "--date", "2026-01-01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no manifest for env local on 2026-01-01"),
        "{}",
        text(&out.stderr)
    );
    let other = Uuid::new_v4().to_string();
    let out = collector(raw.path(), &["verify", "--run-id", &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&other), "{}", text(&out.stderr));

    for args in [
        vec!["verify"],
        vec!["verify", "--date", "23.11.2026"],
        vec!["verify", "--date", "2026-11-23", "--env", "../etc"],
    ] {
        assert_exit(raw.path(), &args, 2);
    }
}
