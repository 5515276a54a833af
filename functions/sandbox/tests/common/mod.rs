//! What the sandbox's HTTP tests share: the credentials and API paths they call, a
//! started sandbox, and GETs over real HTTP.
#![allow(dead_code)] // each test binary uses its own part

use rakuten_sandbox::{dataset, Dataset, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::Value;

pub const APP: &str = "1234567890123456789";
pub const APP_UUID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
pub const KEY: &str = "pk_sandbox";
pub const DATE: &str = "2026-06-01";

/// No rate limit, the day fixed at [`DATE`].
pub fn cfg() -> SandboxConfig {
    SandboxConfig {
        rate_limit_per_sec: None,
        date: Some(DATE.to_string()),
        ..SandboxConfig::default()
    }
}

pub const RANKING: &str = "/ichibaranking/api/IchibaItem/Ranking/20220601";
pub const SEARCH: &str = "/ichibams/api/IchibaItem/Search/20220601";
pub const GENRE: &str = "/ichibagt/api/IchibaGenre/Search/20170711";
pub const TAG: &str = "/ichibagt/api/IchibaTag/Search/20140222";

pub async fn start(config: SandboxConfig) -> SandboxHandle {
    Sandbox::start(config).await.expect("sandbox starts")
}

/// The data set `config` generates and a sandbox serving it.
pub async fn start_with_data(config: SandboxConfig) -> (Dataset, SandboxHandle) {
    (dataset(&config), start(config).await)
}

/// GET `path_and_query` with extra headers: (status, body).
pub async fn get(
    h: &SandboxHandle,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let mut req = reqwest::Client::new().get(format!("{}{path_and_query}", h.base_url()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

/// GET `path_and_query` as it is.
pub async fn raw(h: &SandboxHandle, path_and_query: &str) -> (u16, Vec<u8>) {
    get(h, path_and_query, &[]).await
}

/// GET `path?applicationId=APP&accessKey=KEY&{query}`.
pub async fn call(h: &SandboxHandle, path: &str, query: &str) -> (u16, Vec<u8>) {
    raw(
        h,
        &format!("{path}?applicationId={APP}&accessKey={KEY}&{query}"),
    )
    .await
}

/// [`call`], answered 200 with a JSON body.
pub async fn json(h: &SandboxHandle, path: &str, query: &str) -> Value {
    let (status, body) = call(h, path, query).await;
    assert_eq!(
        status,
        200,
        "{path}?{query}: {}",
        String::from_utf8_lossy(&body)
    );
    parse(&body)
}

pub fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("valid JSON")
}
