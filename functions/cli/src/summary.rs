//! The human-readable end-of-job summary.

use collector_core::jobs::ranking::Check;
use collector_core::jobs::JobOutput;

pub fn print(out: &JobOutput, store: &str) {
    let u = &out.units;
    println!(
        "{} job {} — run {} (attempt {})",
        out.job, out.status, out.run_id, out.attempt
    );
    println!(
        "  units      {} attempted, {} succeeded, {} failed ({:.2}%, threshold {:.2}%)",
        u.attempted,
        u.succeeded,
        u.failed,
        out.failure_rate * 100.0,
        out.threshold * 100.0
    );
    println!(
        "  requests   {} sent ({} retries, {} answered 429)",
        out.requests, out.retries, out.throttled
    );
    for i in &out.incomplete {
        println!("  snapshot   {i}");
    }
    for f in out.quality.iter().filter(|f| f.check != Check::Incomplete) {
        println!("  quality    {f}");
    }
    let width = out.rows.keys().map(String::len).max().unwrap_or(0);
    for (i, (table, r)) in out.rows.iter().enumerate() {
        let label = if i == 0 { "rows" } else { "" };
        println!(
            "  {label:<10} {table:<width$}  {:>5} inserted, {:>5} updated, {:>5} unchanged, {:>4} deleted",
            r.inserted, r.updated, r.unchanged, r.deleted
        );
    }
    println!(
        "  raw store  {} objects written, {} already stored identically — {store}",
        out.raw_written, out.raw_identical
    );
    if !out.extra.is_empty() {
        let parts: Vec<String> = out.extra.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  details    {}", parts.join(", "));
    }
    if !out.done {
        println!("  NOT DONE   stopped at its time budget; run the same command again to continue");
    }
    if let Some(m) = &out.manifest_key {
        println!("  manifest   {m}");
    }
    println!("  duration   {:.1} s", out.duration_ms as f64 / 1000.0);
}
