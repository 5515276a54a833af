//! Behaviour over real HTTP against a scripted loopback responder.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rakuten_client::{ApiError, ClientConfig, ErrorKind, RakutenClient, RankingQuery};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const APP_ID: &str = "APPID-SECRET-123";
const ACCESS_KEY: &str = "pk_SECRET_456";
const AFFILIATE: &str = "AFF-SECRET-789";

const RANKING_BODY: &str = r#"{"title":"t","Items":[{"rank":2,"itemCode":"s:2","itemName":"b"},{"rank":1,"itemCode":"s:1","itemName":"a","itemPrice":"3980"}]}"#;

/// One scripted answer. `None` status = accept the request and never answer.
#[derive(Clone)]
struct Reply {
    status: Option<u16>,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status: Some(status),
        body: body.to_string(),
    }
}

struct Server {
    base: url::Url,
    /// Raw request heads (request line + headers) in arrival order.
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves `script` in order, repeating the last reply when it runs out.
async fn serve(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        let mut i = 0usize;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let r = script[i.min(script.len() - 1)].clone();
            i += 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let Some(status) = r.status else {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    return;
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    r.body.len(),
                    r.body
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Server {
        base: url::Url::parse(&format!("http://{addr}")).unwrap(),
        requests,
    }
}

fn config(base: url::Url) -> ClientConfig {
    let mut c = ClientConfig::new(
        base,
        SecretString::from(APP_ID),
        SecretString::from(ACCESS_KEY),
    );
    c.affiliate_id = Some(SecretString::from(AFFILIATE));
    c.requests_per_second = 1000.0;
    c.retry_base_delay = Duration::from_millis(10);
    c.timeout = Duration::from_secs(5);
    c
}

fn client(base: url::Url) -> RakutenClient {
    RakutenClient::new(config(base)).unwrap()
}

fn assert_no_secrets(err: &ApiError) {
    for text in [format!("{err}"), format!("{err:?}")] {
        for secret in [APP_ID, ACCESS_KEY, AFFILIATE] {
            assert!(!text.contains(secret), "secret {secret} leaked in {text}");
        }
    }
}

fn q(genre_id: i64, page: u32) -> RankingQuery {
    RankingQuery {
        genre_id,
        period: None,
        page,
    }
}

#[tokio::test]
async fn ranking_request_shape_and_parse() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let mut cfg = config(server.base.clone());
    cfg.referer = Some("https://example.com/".into());
    cfg.origin = Some("https://example.com".into());
    let c = RakutenClient::new(cfg).unwrap();

    let got = c.ranking(&q(0, 3)).await.unwrap();
    assert_eq!(got.unit, "ranking genreId=0 page=3");
    assert_eq!(got.attempts, 1);
    assert_eq!(&got.body[..], RANKING_BODY.as_bytes());
    assert_eq!(got.parsed.items[0].rank, 1);
    assert_eq!(got.parsed.items[0].item_price, Some(3980));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let head = &reqs[0];
    let line = head.lines().next().unwrap();
    assert!(
        line.starts_with("GET /ichibaranking/api/IchibaItem/Ranking/20220601?"),
        "{line}"
    );
    for part in [
        "applicationId=APPID-SECRET-123",
        "accessKey=pk_SECRET_456",
        "formatVersion=2",
        "affiliateId=AFF-SECRET-789",
        "genreId=0",
        "page=3",
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }
    assert!(!line.contains("period="), "{line}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nreferer: https://example.com/\r\n"),
        "{head}"
    );
    assert!(
        lower.contains("\r\norigin: https://example.com\r\n"),
        "{head}"
    );
    assert!(
        lower.contains("\r\nuser-agent: ichiba-collector/"),
        "{head}"
    );
}

#[tokio::test]
async fn other_endpoints_send_their_params() {
    let server = serve(vec![
        reply(200, r#"{"count":0,"page":1,"hits":0,"pageCount":0}"#),
        reply(
            200,
            r#"{"current":{"genreId":100283,"genreName":"洋菓子","genreLevel":2}}"#,
        ),
        reply(200, r#"{"tagGroups":[]}"#),
        reply(200, RANKING_BODY),
    ])
    .await;
    let c = client(server.base.clone());

    let item = c.item_by_code("shop:123").await.unwrap();
    assert_eq!(item.parsed.count, 0);
    assert_eq!(item.unit, "item itemCode=shop:123");
    let genre = c.genre(100283).await.unwrap();
    assert_eq!(genre.parsed.current.unwrap().name, "洋菓子");
    let tags = c.tags(&[1000317, 1003704]).await.unwrap();
    assert!(tags.parsed.tag_groups.is_empty());
    assert_eq!(tags.unit, "tags tagId=1000317,1003704");
    let rt = RankingQuery {
        genre_id: 100283,
        period: Some("realtime".into()),
        page: 1,
    };
    assert_eq!(
        c.ranking(&rt).await.unwrap().unit,
        "ranking genreId=100283 period=realtime page=1"
    );

    let reqs = server.requests();
    let lines: Vec<&str> = reqs.iter().map(|r| r.lines().next().unwrap()).collect();
    assert!(lines[0].starts_with("GET /ichibams/api/IchibaItem/Search/20220601?"));
    assert!(lines[0].contains("itemCode=shop%3A123"), "{}", lines[0]);
    assert!(lines[0].contains("hits=1") && lines[0].contains("availability=0"));
    assert!(lines[1].starts_with("GET /ichibagt/api/IchibaGenre/Search/20170711?"));
    assert!(lines[1].contains("genreId=100283"));
    assert!(lines[2].starts_with("GET /ichibagt/api/IchibaTag/Search/20140222?"));
    assert!(lines[2].contains("tagId=1000317%2C1003704"), "{}", lines[2]);
    assert!(lines[3].contains("period=realtime"));
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let server = serve(vec![
        reply(
            503,
            r#"{"error":"service_unavailable","error_description":"under maintenance"}"#,
        ),
        reply(200, RANKING_BODY),
    ])
    .await;
    let c = client(server.base.clone());
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert_eq!(got.attempts, 2);
    assert_eq!(server.requests().len(), 2);
    let s = c.stats();
    assert_eq!(s.requests, 2);
    assert_eq!(s.retries, 1);
    assert_eq!(s.server_errors, 1);
    assert_eq!(s.throttled, 0);
}

#[tokio::test]
async fn retries_429_twice_then_succeeds() {
    let throttled =
        r#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}"#;
    let server = serve(vec![
        reply(429, throttled),
        reply(429, throttled),
        reply(200, RANKING_BODY),
    ])
    .await;
    let c = client(server.base.clone());
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert_eq!(got.attempts, 3);
    assert_eq!(got.parsed.items.len(), 2);
    let s = c.stats();
    assert_eq!(s.requests, 3);
    assert_eq!(s.retries, 2);
    assert_eq!(s.throttled, 2);
    assert_eq!(s.server_errors, 0);
}

#[tokio::test]
async fn exhausted_429_is_rate_limited_with_body_fields() {
    let server = serve(vec![reply(
        429,
        r#"{"error":"too_many_requests","error_description":"number of allowed requests has been exceeded"}"#,
    )])
    .await;
    let c = client(server.base.clone());
    let err = c.ranking(&q(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.kind().as_str(), "rate_limited");
    assert_eq!(err.http_status(), Some(429));
    assert_eq!(err.unit(), Some("ranking genreId=0 page=1"));
    match &err {
        ApiError::Http {
            code,
            message,
            attempts,
            ..
        } => {
            assert_eq!(code.as_deref(), Some("too_many_requests"));
            assert_eq!(
                message.as_deref(),
                Some("number of allowed requests has been exceeded")
            );
            assert_eq!(*attempts, 4);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(server.requests().len(), 4);
    assert_eq!(c.stats().throttled, 4);
    assert_eq!(c.stats().retries, 3);
    let text = err.to_string();
    assert!(text.contains("ranking genreId=0 page=1"), "{text}");
    assert!(text.contains("429"), "{text}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn exhausted_500_is_server_error() {
    let server = serve(vec![reply(500, "<html>oops</html>")]).await;
    let mut cfg = config(server.base.clone());
    cfg.max_attempts = 2;
    let c = RakutenClient::new(cfg).unwrap();
    let err = c.genre(0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ServerError);
    assert!(matches!(
        &err,
        ApiError::Http {
            status: 500,
            code: None,
            message: None,
            attempts: 2,
            ..
        }
    ));
    assert_eq!(server.requests().len(), 2);
    assert_eq!(c.stats().server_errors, 2);
}

#[tokio::test]
async fn no_retry_on_400() {
    let server = serve(vec![reply(
        400,
        r#"{"error":"wrong_parameter","error_description":"specify valid applicationId"}"#,
    )])
    .await;
    let c = client(server.base.clone());
    let err = c.item_by_code("shop:1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClientError);
    assert_eq!(err.http_status(), Some(400));
    assert_eq!(server.requests().len(), 1);
    let s = c.stats();
    assert_eq!((s.requests, s.retries), (1, 0));
    let text = err.to_string();
    assert!(text.contains("item itemCode=shop:1"), "{text}");
    assert!(text.contains("specify valid applicationId"), "{text}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn no_retry_on_403_gateway_body() {
    let server = serve(vec![reply(
        403,
        r#"{"errors":{"errorCode":403,"errorMessage":"REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING"}}"#,
    )])
    .await;
    let c = client(server.base.clone());
    let err = c.tags(&[1]).await.unwrap_err();
    assert_eq!(server.requests().len(), 1);
    match &err {
        ApiError::Http {
            status,
            code,
            message,
            attempts,
            ..
        } => {
            assert_eq!(*status, 403);
            assert_eq!(code.as_deref(), Some("403"));
            assert_eq!(
                message.as_deref(),
                Some("REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING")
            );
            assert_eq!(*attempts, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_no_secrets(&err);
}

#[tokio::test]
async fn server_echoing_credentials_is_scrubbed() {
    let body = format!(
        r#"{{"error":"wrong_parameter","error_description":"bad applicationId {APP_ID} / {ACCESS_KEY}"}}"#
    );
    let server = serve(vec![reply(400, &body)]).await;
    let c = client(server.base.clone());
    let err = c.genre(1).await.unwrap_err();
    assert!(err.to_string().contains("[REDACTED]"), "{err}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn malformed_200_is_not_retried() {
    let server = serve(vec![reply(200, r#"{"Items": "nope"#)]).await;
    let c = client(server.base.clone());
    let err = c.ranking(&q(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(err.unit(), Some("ranking genreId=0 page=1"));
    assert_eq!(server.requests().len(), 1);
    assert_no_secrets(&err);
}

#[tokio::test]
async fn error_body_with_200_is_malformed_not_empty() {
    let server = serve(vec![reply(
        200,
        r#"{"error":"wrong_parameter","error_description":"page must be 1-34"}"#,
    )])
    .await;
    let c = client(server.base.clone());
    let err = c.ranking(&q(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert!(err.to_string().contains("page must be 1-34"), "{err}");
}

#[tokio::test]
async fn timeouts_are_retried_and_counted() {
    let server = serve(vec![Reply {
        status: None,
        body: String::new(),
    }])
    .await;
    let mut cfg = config(server.base.clone());
    cfg.timeout = Duration::from_millis(150);
    cfg.max_attempts = 2;
    let c = RakutenClient::new(cfg).unwrap();
    let err = c.genre(0).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(c.stats().timeouts, 2);
    assert_eq!(c.stats().requests, 2);
    assert_no_secrets(&err);
}

#[tokio::test]
async fn connection_refused_is_transport_and_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg = config(url::Url::parse(&format!("http://{addr}")).unwrap());
    cfg.max_attempts = 3;
    let c = RakutenClient::new(cfg).unwrap();
    let err = c.ranking(&q(0, 1)).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Transport { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(
        err.to_string().contains("ranking genreId=0 page=1"),
        "{err}"
    );
    assert!(!err.to_string().contains("127.0.0.1"), "URL leaked: {err}");
    assert_eq!(c.stats().requests, 3);
    assert_no_secrets(&err);
}

#[tokio::test]
async fn invalid_requests_are_not_sent() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let c = client(server.base.clone());
    let eleven: Vec<i64> = (1..=11).collect();
    for err in [
        c.tags(&eleven).await.unwrap_err(),
        c.tags(&[]).await.unwrap_err(),
        c.ranking(&q(0, 0)).await.unwrap_err(),
        c.ranking(&q(0, 35)).await.unwrap_err(),
        c.item_by_code("  ").await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
        assert_eq!(err.unit(), None);
    }
    assert!(server.requests().is_empty());
    assert_eq!(c.stats().requests, 0);
    // Ten ids are fine.
    let ten: Vec<i64> = (1..=10).collect();
    let server2 = serve(vec![reply(200, r#"{"tagGroups":[]}"#)]).await;
    let c2 = client(server2.base.clone());
    c2.tags(&ten).await.unwrap();
    assert_eq!(server2.requests().len(), 1);
}

#[tokio::test]
async fn pacing_holds_across_clones() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let mut cfg = config(server.base.clone());
    cfg.requests_per_second = 20.0;
    let c = RakutenClient::new(cfg).unwrap();

    // 21 sequential requests at 20/s: 20 gaps of 50 ms.
    let start = Instant::now();
    for _ in 0..21 {
        c.ranking(&q(0, 1)).await.unwrap();
    }
    let sequential = start.elapsed();
    assert!(sequential >= Duration::from_millis(950), "{sequential:?}");

    // The same through three clones running concurrently: still paced together.
    let start = Instant::now();
    let run = |c: RakutenClient| async move {
        for _ in 0..7 {
            c.ranking(&q(0, 1)).await.unwrap();
        }
    };
    tokio::join!(run(c.clone()), run(c.clone()), run(c.clone()));
    let concurrent = start.elapsed();
    // At least 20 more 50 ms gaps (the first may reuse a slot freed since).
    assert!(concurrent >= Duration::from_millis(950), "{concurrent:?}");
    assert_eq!(c.stats().requests, 42);
}

#[test]
fn config_validation() {
    let base = url::Url::parse("http://127.0.0.1:1").unwrap();
    let bad: [fn(&mut ClientConfig); 7] = [
        |c| c.requests_per_second = 0.0,
        |c| c.requests_per_second = -1.0,
        |c| c.requests_per_second = f64::NAN,
        |c| c.requests_per_second = f64::INFINITY,
        |c| c.max_attempts = 0,
        |c| c.format_version = 3,
        |c| c.format_version = 0,
    ];
    for tweak in bad {
        let mut cfg = config(base.clone());
        tweak(&mut cfg);
        let err = RakutenClient::new(cfg).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    }
    let mut v1 = config(base);
    v1.format_version = 1;
    assert!(RakutenClient::new(v1).is_ok());
}

#[test]
fn config_defaults_and_debug_redaction() {
    let cfg = ClientConfig::new(
        ClientConfig::default_base_url(),
        SecretString::from(APP_ID),
        SecretString::from(ACCESS_KEY),
    );
    assert_eq!(cfg.base_url.as_str(), "https://openapi.rakuten.co.jp/");
    assert_eq!(cfg.format_version, 2);
    assert_eq!(cfg.requests_per_second, 0.95);
    assert_eq!(cfg.max_attempts, 4);
    assert_eq!(cfg.retry_base_delay, Duration::from_secs(1));
    assert_eq!(cfg.timeout, Duration::from_secs(20));
    assert_eq!(
        cfg.endpoints.ranking,
        "/ichibaranking/api/IchibaItem/Ranking/20220601"
    );
    assert_eq!(
        cfg.endpoints.item_search,
        "/ichibams/api/IchibaItem/Search/20220601"
    );
    assert_eq!(
        cfg.endpoints.genre_search,
        "/ichibagt/api/IchibaGenre/Search/20170711"
    );
    assert_eq!(
        cfg.endpoints.tag_search,
        "/ichibagt/api/IchibaTag/Search/20140222"
    );
    let mut cfg = cfg;
    cfg.affiliate_id = Some(SecretString::from(AFFILIATE));
    let dbg = format!("{cfg:?}");
    for secret in [APP_ID, ACCESS_KEY, AFFILIATE] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    let client = RakutenClient::new(cfg).unwrap();
    let dbg = format!("{client:?}");
    for secret in [APP_ID, ACCESS_KEY, AFFILIATE] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
}

#[test]
fn error_kind_names() {
    let names: Vec<&str> = [
        ErrorKind::RateLimited,
        ErrorKind::ServerError,
        ErrorKind::ClientError,
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::Malformed,
        ErrorKind::InvalidRequest,
    ]
    .iter()
    .map(ErrorKind::as_str)
    .collect();
    assert_eq!(
        names,
        [
            "rate_limited",
            "server_error",
            "client_error",
            "timeout",
            "transport",
            "malformed",
            "invalid_request"
        ]
    );
    assert_eq!(
        serde_json::to_string(&ErrorKind::RateLimited).unwrap(),
        "\"rate_limited\""
    );
}
