//! Notify: the webhook (a tiny local HTTP listener), SNS (moto server), a dead webhook
//! that must not fail anything, and closing the run in the ledger.

use std::sync::{Arc, Mutex};

use collector_core::jobs::notify::{self, Notifier};
use ichiba_collector_tests::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Accepts HTTP requests, records their bodies and answers with `status`.
async fn listener(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then Content-Length bytes.
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= h + 4 + len {
                        b.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[h + 4..h + 4 + len]).to_string());
                        break;
                    }
                }
            }
            let resp =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (url, bodies)
}

fn failed_event(run_id: &str) -> Value {
    json!({
        "status": "failed",
        "execution_arn": "arn:aws:states:ap-northeast-1:123456789012:execution:jobnet:x",
        "state": {
            "guard": {"Payload": {"run_id": run_id, "proceed": true}},
            "genre_tag": {
                "genre": {"error": {"Error": "FailureRateExceeded", "Cause": "genre: 3 of 12 units failed (25.00% > threshold 1.00%)"}},
                "tag": {"Payload": {"job": "tag"}}
            },
            "error": {"Error": "FailureRateExceeded", "Cause": "genre: 3 of 12 units failed (25.00% > threshold 1.00%)"}
        }
    })
}

#[tokio::test]
async fn webhook_sns_and_ledger() {
    let (db, sandbox, _raw, ctx) = job_env(sandbox_config(5), &[]).await;
    let client = db.client().await;

    // Webhook + SNS, both up.
    let (url, bodies) = listener(200).await;
    let sns = moto_sns().await;
    let topic = sns
        .create_topic()
        .name(format!("icx-notify-{}", unique(8)))
        .send()
        .await
        .expect("create topic on moto (scripts/start-moto.sh)")
        .topic_arn()
        .unwrap()
        .to_string();
    let run = open_run(&client, "local").await;
    let notifier = Notifier::new(Some(url), Some((sns.clone(), topic.clone())));
    let t0 = std::time::Instant::now();
    let report = notify::run(&ctx, &failed_event(&run.run_id.to_string()), &notifier)
        .await
        .unwrap();
    eprintln!(
        "notify (webhook + SNS + ledger) took {} ms",
        t0.elapsed().as_millis()
    );
    assert!(report.delivered, "{report:?}");
    assert!(report.run_closed);
    assert_eq!(report.channels.len(), 2);
    let body: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    for key in ["text", "content"] {
        let t = body[key].as_str().unwrap();
        assert!(
            t.contains("FAILED") && t.contains("genre: FAILED FailureRateExceeded"),
            "{t}"
        );
        assert!(t.contains(&run.run_id.to_string()));
    }
    let row = one_row(&client, "SELECT status, error_type, error_message, finished_at IS NOT NULL FROM etl_runs WHERE run_id = $1", &[&run.run_id]).await;
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("FailureRateExceeded")
    );
    assert!(row.get::<_, Option<String>>(2).unwrap().contains("3 of 12"));
    assert!(row.get::<_, bool>(3));

    // A dead webhook (nothing listening), a webhook answering 500 and an unknown SNS topic:
    // reported, never raised; the run is still closed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let (five_hundred, _) = listener(500).await;
    for (webhook, sns_target) in [
        (Some(dead), None),
        (Some(five_hundred), None),
        (
            None,
            Some((
                sns.clone(),
                "arn:aws:sns:ap-northeast-1:123456789012:no-such-topic".to_string(),
            )),
        ),
    ] {
        let run = open_run(&client, "local").await;
        let ev = json!({"status": "succeeded", "state": {"guard": {"Payload": {"run_id": run.run_id.to_string()}}}});
        let report = notify::run(&ctx, &ev, &Notifier::new(webhook, sns_target))
            .await
            .unwrap();
        assert!(!report.delivered);
        assert!(
            !report.channels[0].ok && report.channels[0].error.is_some(),
            "{:?}",
            report.channels
        );
        assert_eq!(run_status(&client, run.run_id).await, "succeeded");
    }

    // Nothing configured: logged only; a Guard that never opened a run: nothing to close.
    let report = notify::run(
        &ctx,
        &json!({"status": "failed", "state": {"error": {"Error": "InvalidInput", "Cause": "bad"}}}),
        &Notifier::default(),
    )
    .await
    .unwrap();
    assert!(!report.delivered && report.channels.is_empty() && !report.run_closed);
    assert_eq!(report.summary.error.unwrap().error, "InvalidInput");
    sandbox.shutdown().await;
}
