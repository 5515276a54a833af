//! Behaviour over real HTTP against a scripted loopback responder.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rakuten_client::{
    AccessKeyIn, ApiError, ClientConfig, ErrorKind, Pacer, RakutenClient, RankingQuery, Slot,
};
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
    /// Extra header lines, each ending in `\r\n`.
    headers: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status: Some(status),
        body: body.to_string(),
        headers: String::new(),
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
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n{}",
                    r.body.len(),
                    r.headers,
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

/// A server answering `script` and a client of it.
async fn serve_client(script: Vec<Reply>) -> (Server, RakutenClient) {
    let server = serve(script).await;
    let c = client(server.base.clone());
    (server, c)
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
    // The access key travels in the header by default: in no URL.
    assert!(!line.contains("accessKey"), "{line}");
    assert!(!line.contains(ACCESS_KEY), "{line}");
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "\r\naccesskey: {}\r\n",
            ACCESS_KEY.to_ascii_lowercase()
        )),
        "{head}"
    );
    for part in [
        "applicationId=APPID-SECRET-123",
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
    let (server, c) = serve_client(vec![
        reply(200, r#"{"count":0,"page":1,"hits":0,"pageCount":0}"#),
        reply(
            200,
            r#"{"current":{"genreId":100283,"genreName":"洋菓子","genreLevel":2}}"#,
        ),
        reply(200, r#"{"tagGroups":[]}"#),
        reply(200, RANKING_BODY),
    ])
    .await;

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
    let (server, c) = serve_client(vec![
        reply(
            503,
            r#"{"error":"service_unavailable","error_description":"under maintenance"}"#,
        ),
        reply(200, RANKING_BODY),
    ])
    .await;
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert_eq!(got.attempts, 2);
    assert_eq!(server.requests().len(), 2);
    let s = c.stats();
    assert_eq!(
        (s.requests, s.retries, s.server_errors, s.throttled),
        (2, 1, 1, 0)
    );
}

#[tokio::test]
async fn retries_429_twice_then_succeeds() {
    let throttled =
        r#"{"statusCode":429,"message":"Rate limit is exceeded. Try again in 1 seconds."}"#;
    let (_server, c) = serve_client(vec![
        reply(429, throttled),
        reply(429, throttled),
        reply(200, RANKING_BODY),
    ])
    .await;
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert_eq!(got.attempts, 3);
    assert_eq!(got.parsed.items.len(), 2);
    let s = c.stats();
    assert_eq!(
        (s.requests, s.retries, s.throttled, s.server_errors),
        (3, 2, 2, 0)
    );
}

#[tokio::test]
async fn exhausted_429_is_rate_limited_with_body_fields() {
    let (server, c) = serve_client(vec![reply(
        429,
        r#"{"error":"too_many_requests","error_description":"number of allowed requests has been exceeded"}"#,
    )]).await;
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
    let (server, c) = serve_client(vec![reply(
        400,
        r#"{"error":"wrong_parameter","error_description":"specify valid applicationId"}"#,
    )])
    .await;
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
    let (server, c) = serve_client(vec![reply(
        403,
        r#"{"errors":{"errorCode":403,"errorMessage":"REQUEST_CONTEXT_BODY_HTTP_REFERRER_MISSING"}}"#,
    )]).await;
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
    let (_server, c) = serve_client(vec![reply(400, &body)]).await;
    let err = c.genre(1).await.unwrap_err();
    assert!(err.to_string().contains("[REDACTED]"), "{err}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn access_key_in_query_when_asked() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let mut cfg = config(server.base.clone());
    cfg.access_key_in = AccessKeyIn::Query;
    let c = RakutenClient::new(cfg).unwrap();
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert!(!got.unit.contains(ACCESS_KEY));
    let head = &server.requests()[0];
    assert!(
        head.lines()
            .next()
            .unwrap()
            .contains("accessKey=pk_SECRET_456"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("\r\naccesskey:"),
        "{head}"
    );
}

#[tokio::test]
async fn key_in_no_url_and_no_unit_by_default() {
    let (server, c) = serve_client(vec![
        reply(200, RANKING_BODY),
        reply(200, r#"{"count":0,"page":1,"hits":0,"pageCount":0}"#),
        reply(
            200,
            r#"{"current":{"genreId":1,"genreName":"x","genreLevel":1}}"#,
        ),
        reply(200, r#"{"tagGroups":[]}"#),
    ])
    .await;
    let units = [
        c.ranking(&q(0, 1)).await.unwrap().unit,
        c.item_by_code("shop:1").await.unwrap().unit,
        c.genre(1).await.unwrap().unit,
        c.tags(&[1]).await.unwrap().unit,
    ];
    for text in units
        .iter()
        .chain(c.sent_requests().iter().map(|r| &r.unit))
    {
        assert!(!text.contains(ACCESS_KEY), "{text}");
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    for head in &reqs {
        let target = head.lines().next().unwrap();
        assert!(
            !target.contains(ACCESS_KEY) && !target.contains("accessKey"),
            "{target}"
        );
        assert_eq!(
            head.matches(ACCESS_KEY).count(),
            1,
            "once, in the header: {head}"
        );
    }
}

#[tokio::test]
async fn truncated_200_is_retried_like_a_5xx() {
    let (_server, c) = serve_client(vec![
        reply(200, r#"{"Items": "nope"#),
        reply(200, RANKING_BODY),
    ])
    .await;
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert_eq!(got.attempts, 2);
    assert_eq!(&got.body[..], RANKING_BODY.as_bytes());
    let s = c.stats();
    assert_eq!((s.requests, s.retries, s.malformed), (2, 1, 1));
}

#[tokio::test]
async fn malformed_200_after_every_retry_carries_the_last_body() {
    let cut = r#"{"Items": [{"rank":1, "itemCode": "#;
    let (server, c) = serve_client(vec![reply(200, cut)]).await;
    let err = c.ranking(&q(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(err.unit(), Some("ranking genreId=0 page=1"));
    assert_eq!(server.requests().len(), 4);
    assert_eq!(err.attempts(), 4);
    match &err {
        ApiError::Malformed {
            attempts: 4,
            body: Some(body),
            ..
        } => assert_eq!(&body[..], cut.as_bytes()),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.malformed_body().map(|b| b.len()), Some(cut.len()));
    let s = c.stats();
    assert_eq!((s.requests, s.retries, s.malformed), (4, 3, 4));
    // The body is evidence for the caller, not part of the message.
    assert!(!err.to_string().contains("itemCode"), "{err}");
    assert!(!format!("{err:?}").contains("itemCode"), "{err:?}");
    assert_no_secrets(&err);
}

#[tokio::test]
async fn error_body_with_200_is_malformed_not_empty() {
    let (server, c) = serve_client(vec![reply(
        200,
        r#"{"error":"wrong_parameter","error_description":"page must be 1-34"}"#,
    )])
    .await;
    let err = c.ranking(&q(0, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert!(err.to_string().contains("page must be 1-34"), "{err}");
    // Well-formed JSON of the wrong shape is not transient: not retried.
    assert_eq!(server.requests().len(), 1);
    assert_eq!(err.attempts(), 1);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let mut throttled = reply(
        429,
        r#"{"statusCode":429,"message":"Rate limit is exceeded."}"#,
    );
    throttled.headers = "retry-after: 1\r\n".into();
    let (_server, c) = serve_client(vec![throttled, reply(200, RANKING_BODY)]).await; // 10 ms base backoff
    let got = c.ranking(&q(0, 1)).await.unwrap();
    assert_eq!(got.attempts, 2);
    let sent = c.sent_requests();
    assert_eq!(sent.len(), 2);
    let gap = sent[1].at - sent[0].at;
    assert!(gap >= Duration::from_secs(1), "waited only {gap:?}");
    assert_eq!(c.stats().throttled, 1);
}

#[tokio::test]
async fn retry_after_is_capped() {
    let mut throttled = reply(
        429,
        r#"{"statusCode":429,"message":"Rate limit is exceeded."}"#,
    );
    throttled.headers = "retry-after: 86400\r\n".into();
    let server = serve(vec![throttled, reply(200, RANKING_BODY)]).await;
    let mut cfg = config(server.base.clone());
    cfg.retry_after_cap = Duration::from_millis(300);
    let c = RakutenClient::new(cfg).unwrap();
    // A day-long Retry-After would hang the test; the cap makes it 300 ms.
    let got = tokio::time::timeout(Duration::from_secs(60), c.ranking(&q(0, 1)))
        .await
        .expect("Retry-After capped")
        .unwrap();
    assert_eq!(got.attempts, 2);
    let sent = c.sent_requests();
    assert!(sent[1].at - sent[0].at >= Duration::from_millis(300));
}

#[tokio::test]
async fn timeouts_are_retried_and_counted() {
    let server = serve(vec![Reply {
        status: None,
        body: String::new(),
        headers: String::new(),
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
    let (server, c) = serve_client(vec![reply(200, RANKING_BODY)]).await;
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

/// Consecutive recorded send instants, as gaps.
fn gaps(sent: &[rakuten_client::SentRequest]) -> Vec<Duration> {
    sent.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_holds_across_clones() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let mut cfg = config(server.base.clone());
    cfg.requests_per_second = 20.0;
    let c = RakutenClient::new(cfg).unwrap();
    assert_eq!(c.min_send_interval(), Duration::from_millis(50));

    for _ in 0..11 {
        c.ranking(&q(0, 1)).await.unwrap();
    }
    // The same through three clones on two threads: still paced together.
    let run = |c: RakutenClient| async move {
        for _ in 0..7 {
            c.ranking(&q(0, 1)).await.unwrap();
        }
    };
    let (a, b, d) = tokio::join!(
        tokio::spawn(run(c.clone())),
        tokio::spawn(run(c.clone())),
        tokio::spawn(run(c.clone()))
    );
    a.unwrap();
    b.unwrap();
    d.unwrap();
    let sent = c.sent_requests();
    assert_eq!(sent.len(), 32);
    assert_eq!(c.stats().requests, 32);
    assert_eq!(server.requests().len(), 32);
    // What the client controls: its sends, at least one interval apart, however late
    // a busy machine wakes it.
    for g in gaps(&sent) {
        assert!(g >= Duration::from_millis(50), "{g:?}");
    }
}

#[tokio::test]
async fn send_log_is_bounded() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let mut cfg = config(server.base.clone());
    cfg.send_log_capacity = 3;
    let c = RakutenClient::new(cfg).unwrap();
    for page in 1..=5 {
        c.ranking(&q(0, page)).await.unwrap();
    }
    let units: Vec<String> = c.sent_requests().into_iter().map(|r| r.unit).collect();
    assert_eq!(
        units,
        [
            "ranking genreId=0 page=3",
            "ranking genreId=0 page=4",
            "ranking genreId=0 page=5"
        ]
    );
}

/// A pacer whose first slot of each request is already over (as if the process woke up
/// late), and whose second opens 30 ms later and stays open for a minute. Records what it was given back.
#[derive(Default)]
struct LatePacer {
    handed_back: Mutex<Vec<Option<(i64, i64)>>>,
    granted: Mutex<Vec<Slot>>,
}

impl Pacer for LatePacer {
    fn reserve<'a>(
        &'a self,
        missed: Option<&'a Slot>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Slot> + Send + 'a>> {
        Box::pin(async move {
            self.handed_back
                .lock()
                .unwrap()
                .push(missed.and_then(|m| m.token));
            let now = Instant::now();
            let n = self.granted.lock().unwrap().len() as i64;
            let slot = if missed.is_none() {
                Slot {
                    not_before: now - Duration::from_millis(20),
                    deadline: Some(now - Duration::from_millis(10)),
                    token: Some((n, n)),
                }
            } else {
                Slot {
                    not_before: now + Duration::from_millis(30),
                    deadline: Some(now + Duration::from_secs(60)),
                    token: Some((n, n)),
                }
            };
            self.granted.lock().unwrap().push(slot.clone());
            slot
        })
    }
}

#[tokio::test]
async fn a_missed_slot_is_handed_back_not_used() {
    let server = serve(vec![reply(200, RANKING_BODY)]).await;
    let pacer = Arc::new(LatePacer::default());
    let c = RakutenClient::with_pacer(config(server.base.clone()), pacer.clone()).unwrap();
    c.ranking(&q(0, 1)).await.unwrap();
    c.ranking(&q(0, 2)).await.unwrap();
    assert_eq!(
        *pacer.handed_back.lock().unwrap(),
        [None, Some((0, 0)), None, Some((2, 2))],
        "each late slot given back once"
    );
    let granted = pacer.granted.lock().unwrap().clone();
    let sent = c.sent_requests();
    assert_eq!(sent.len(), 2);
    for (s, slot) in sent.iter().zip([&granted[1], &granted[3]]) {
        assert!(s.at >= slot.not_before && s.at <= slot.deadline.unwrap());
    }
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
