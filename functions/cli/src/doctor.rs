//! `collector doctor`: checks everything a run needs, one line each with ✓ or ✗ and, for
//! ✗, what to do: the configuration (where each value came from, secrets masked), the
//! database (reachable, TLS, migrations current), the raw store (a probe object written
//! and read back under `{env}/doctor/`), and each of the four Rakuten APIs called once
//! with the configured credentials, base URL and paths. The failures Rakuten users meet
//! since the 2026 migration become advice (missing Referer, rejected access key, an app
//! bound to IP addresses, the retired legacy host, a wrong version path, a shared
//! application ID). Exit 0 only when every check passes.

use std::process::ExitCode;

use bytes::Bytes;
use collector_core::config::{Config, SecretSource, VARIABLES};
use collector_core::db;
use collector_core::jobs::{AppContext, RakutenEndpoint};
use collector_core::rawstore;
use collector_core::secrets;
use rakuten_client::{ApiError, RankingQuery};
use secrecy::ExposeSecret;

/// One check's outcome: what was checked, and for a failure what to do.
struct Line {
    ok: bool,
    what: String,
    advice: Option<String>,
}

fn pass(what: impl Into<String>) -> Line {
    Line {
        ok: true,
        what: what.into(),
        advice: None,
    }
}

fn failed(what: impl Into<String>, advice: impl Into<String>) -> Line {
    Line {
        ok: false,
        what: what.into(),
        advice: Some(advice.into()),
    }
}

fn show(line: &Line) {
    println!("{} {}", if line.ok { "✓" } else { "✗" }, line.what);
    if let Some(a) = &line.advice {
        println!("    → {a}");
    }
}

/// `pk_abcd…wxyz`-style: enough to recognise a value, never enough to use it.
fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return "****".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}…{tail} ({} characters)", chars.len())
}

fn source(name: &str, s: &SecretSource) -> String {
    match s {
        SecretSource::Value(_) => format!("{name} from the environment"),
        SecretSource::SsmParameter(p) => format!("{name} from SSM parameter {p}"),
        SecretSource::Absent => format!("{name} not set"),
    }
}

pub async fn run(mut config: Config) -> ExitCode {
    let mut lines = Vec::new();
    // One try per API call: a doctor reports, it does not insist.
    config.rakuten.max_attempts = 1;

    // Configuration: which variables are set, and where the secrets come from.
    let set: Vec<&str> = VARIABLES
        .iter()
        .map(|var| var.name)
        .filter(|name| std::env::var_os(name).is_some())
        .collect();
    lines.push(pass(format!(
        "configuration (env {}): {} variable(s) set in the environment{}{}",
        config.env,
        set.len(),
        if set.is_empty() { "" } else { ": " },
        set.join(", ")
    )));
    lines.push(pass(format!(
        "secrets: {}; {}; {}",
        source("DATABASE_URL", &config.database_url),
        source("RAKUTEN_APPLICATION_ID", &config.rakuten.application_id),
        source("RAKUTEN_ACCESS_KEY", &config.rakuten.access_key)
    )));
    let secrets = match secrets::resolve(&config).await {
        Ok(s) => {
            lines.push(pass("secrets resolved"));
            Some(s)
        }
        Err(e) => {
            lines.push(failed(
                format!("secrets: {e}"),
                "set the variable (or its _SSM_PARAMETER) and check the SSM permissions",
            ));
            None
        }
    };

    // Database.
    if let Some(s) = &secrets {
        match db::connect(&s.database_url).await {
            Ok(d) => {
                lines.push(pass(format!(
                    "database {} reachable ({})",
                    d.target,
                    if d.tls { "TLS" } else { "no TLS" }
                )));
                match db::schema_status(&d.client).await {
                    Ok((Some(cur), latest)) if cur >= latest => {
                        lines.push(pass(format!("migrations current (version {cur})")))
                    }
                    Ok((cur, latest)) => lines.push(failed(
                        format!(
                            "migrations: the database is at version {}, this build needs {latest}",
                            cur.map_or("none".to_string(), |c| c.to_string())
                        ),
                        "run `collector migrate` (locally it also creates the database)",
                    )),
                    Err(e) => lines.push(failed(
                        format!("migrations: {e}"),
                        "check the database user's rights",
                    )),
                }
            }
            Err(e) => lines.push(failed(
                format!("database: {e}"),
                "check DATABASE_URL (host, port, user, sslmode=require for a hosted server) and that the server accepts this address",
            )),
        }
    }

    // Raw store: a probe object, written create-only and read back.
    match rawstore::open(&config.raw_store).await {
        Ok(store) => {
            let key = format!("{}/doctor/probe-{}.json", config.env, uuid::Uuid::new_v4());
            let body = Bytes::from_static(b"{\"probe\":\"collector doctor\"}");
            let result = async {
                store.put_new(&key, body.clone()).await?;
                store.get(&key).await
            }
            .await;
            match result {
                Ok(Some(read)) if read == body => lines.push(pass(format!(
                    "raw store {} writable and readable (probe {key})",
                    store.describe()
                ))),
                Ok(_) => lines.push(failed(
                    format!("raw store {}: the probe read back differs", store.describe()),
                    "check the store (a proxy or lifecycle rule rewriting objects?)",
                )),
                Err(e) => lines.push(failed(
                    format!("raw store {}: {e}", store.describe()),
                    "check RAW_STORE, the bucket's existence and the s3:PutObject/GetObject rights (or the directory's permissions and free space)",
                )),
            }
        }
        Err(e) => lines.push(failed(format!("raw store: {e}"), "check RAW_STORE")),
    }

    // Rakuten: each API once.
    match secrets.as_ref().and_then(|s| s.rakuten.clone()) {
        None => lines.push(pass(
            "Rakuten credentials not set: local runs use the built-in sandbox (set RAKUTEN_APPLICATION_ID and RAKUTEN_ACCESS_KEY to check the real API)",
        )),
        Some(creds) => {
            lines.push(pass(format!(
                "Rakuten application {} with access key {} ({}), base URL {}",
                mask(creds.application_id.expose_secret()),
                mask(creds.access_key.expose_secret()),
                if config.rakuten.access_key_in_query {
                    "in the query"
                } else {
                    "in the accessKey header"
                },
                config.rakuten.base_url
            )));
            let endpoint = RakutenEndpoint {
                base_url: config.rakuten.base_url.clone(),
                application_id: creds.application_id.clone(),
                access_key: creds.access_key.clone(),
            };
            let paths = config.rakuten.clone();
            let secrets = secrets.clone().expect("resolved");
            match AppContext::new(config.clone(), secrets, Some(endpoint)).await {
                Ok(ctx) => {
                    let r = &ctx.rakuten;
                    let ranking = r.ranking(&RankingQuery {
                        genre_id: 0,
                        period: None,
                        page: 1,
                    });
                    let ranking = ranking.await;
                    // An item code to look up: the ranking's first, else any.
                    let code = ranking
                        .as_ref()
                        .ok()
                        .and_then(|f| f.parsed.items.first().map(|i| i.item_code.clone()))
                        .unwrap_or_else(|| "rakuten:10000000".into());
                    let checks: [(&str, &str, Result<(), ApiError>); 4] = [
                        ("Ranking", &paths.ranking_path, ranking.map(|_| ())),
                        (
                            "Item Search",
                            &paths.item_search_path,
                            r.item_by_code(&code).await.map(|_| ()),
                        ),
                        (
                            "Genre Search",
                            &paths.genre_search_path,
                            r.genre(0).await.map(|_| ()),
                        ),
                        (
                            "Tag Search",
                            &paths.tag_search_path,
                            r.tags(&[1000317]).await.map(|_| ()),
                        ),
                    ];
                    for (api, path, result) in checks {
                        lines.push(match result {
                            Ok(()) => pass(format!("Rakuten {api} ({path}) answered")),
                            Err(e) => failed(format!("Rakuten {api} ({path}): {e}"), advice(&e, path)),
                        });
                    }
                }
                Err(e) => lines.push(failed(format!("Rakuten client: {e}"), "check the RAKUTEN_* settings")),
            }
        }
    }

    for l in &lines {
        show(l);
    }
    let bad = lines.iter().filter(|l| !l.ok).count();
    if bad == 0 {
        println!("all {} checks passed", lines.len());
        ExitCode::SUCCESS
    } else {
        println!("{bad} of {} checks failed", lines.len());
        ExitCode::from(1)
    }
}

/// What to do about a failed API call: the failures Rakuten users report since the 2026
/// migration (docs: reference/rakuten-api.md §7, §9).
fn advice(e: &ApiError, path: &str) -> String {
    let text = e.to_string();
    let status = e.http_status();
    if text.contains("REFERRER_MISSING") {
        return "the application is registered as a Web application: set RAKUTEN_REFERER (or RAKUTEN_ORIGIN) to its registered website URL".into();
    }
    if text.contains("REFERRER_NOT_ALLOWED") {
        return "RAKUTEN_REFERER/RAKUTEN_ORIGIN does not match the website registered with the application: use exactly that URL".into();
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("ip_not_allowed") || (lower.contains(" ip") && lower.contains("not allowed"))
    {
        return "the application is a backend app bound to IP addresses: run from an allowed address; on AWS give the functions a static egress IP (deploy with SubnetIds of private subnets behind a NAT gateway with an Elastic IP, and register that IP with the app)".into();
    }
    if text.contains("Invalid Access Key") || lower.contains("access key") {
        return "the access key is rejected: copy the access key (pk_…) of this application again into RAKUTEN_ACCESS_KEY (it travels in the accessKey header; RAKUTEN_ACCESS_KEY_IN=query if your setup needs the query)".into();
    }
    if text.contains("applicationId") {
        return "the application ID is rejected: check RAKUTEN_APPLICATION_ID (the new-style UUID or the 19-digit ID of this application)".into();
    }
    match status {
        Some(503) if text.contains("maintenance") || path.starts_with("/services/") => {
            "the legacy host (app.rakuten.co.jp/services/…) is retired: set RAKUTEN_API_BASE_URL=https://openapi.rakuten.co.jp and the new paths (the defaults)".into()
        }
        Some(404) => format!(
            "{path} is not served: the API version in the path is wrong or retired; unset the RAKUTEN_*_PATH variable to use the default"
        ),
        Some(429) => "too many requests: another process uses the same application ID (or RAKUTEN_REQUESTS_PER_SECOND is above 1); stop it or use another application ID".into(),
        Some(s) if s >= 500 => "Rakuten answered a server error: try again later".into(),
        _ if matches!(e, ApiError::Timeout { .. } | ApiError::Transport { .. }) => {
            "no answer from the API: check the network path (a VPC without NAT cannot reach the internet) and RAKUTEN_API_BASE_URL".into()
        }
        _ => "see the message above".into(),
    }
}
