//! Client configuration.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Default API host (the 2026 platform).
pub const DEFAULT_BASE_URL: &str = "https://openapi.rakuten.co.jp";

/// Endpoint paths, relative to [`ClientConfig::base_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Item Ranking API path.
    pub ranking: String,
    /// Item Search API path.
    pub item_search: String,
    /// Genre Search API path.
    pub genre_search: String,
    /// Tag Search API path.
    pub tag_search: String,
}

impl Endpoints {
    /// The paths and versions this client parses.
    pub const RANKING: &str = "/ichibaranking/api/IchibaItem/Ranking/20220601";
    pub const ITEM_SEARCH: &str = "/ichibams/api/IchibaItem/Search/20220601";
    pub const GENRE_SEARCH: &str = "/ichibagt/api/IchibaGenre/Search/20170711";
    pub const TAG_SEARCH: &str = "/ichibagt/api/IchibaTag/Search/20140222";
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            ranking: Self::RANKING.to_string(),
            item_search: Self::ITEM_SEARCH.to_string(),
            genre_search: Self::GENRE_SEARCH.to_string(),
            tag_search: Self::TAG_SEARCH.to_string(),
        }
    }
}

/// Where the access key travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccessKeyIn {
    /// The `accessKey` request header (marked sensitive): the key is in no URL, so
    /// proxy logs, error texts and traces that show URLs never carry it.
    #[default]
    Header,
    /// The `accessKey` query parameter, for gateways that do not read the header.
    Query,
}

/// Everything [`crate::RakutenClient::new`] needs. `Debug` redacts the secrets.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Scheme + host (+ optional path prefix); endpoint paths are appended to it.
    pub base_url: Url,
    /// Endpoint paths.
    pub endpoints: Endpoints,
    /// Application id (`applicationId` query parameter).
    pub application_id: SecretString,
    /// Access key (`accessKey` header or query parameter, see [`ClientConfig::access_key_in`]).
    pub access_key: SecretString,
    /// Where the access key is sent. Default [`AccessKeyIn::Header`].
    pub access_key_in: AccessKeyIn,
    /// Sent as the `Referer` header when set.
    pub referer: Option<String>,
    /// Sent as the `Origin` header when set.
    pub origin: Option<String>,
    /// Affiliate id (`affiliateId` query parameter) when set.
    pub affiliate_id: Option<SecretString>,
    /// `formatVersion`, 1 or 2.
    pub format_version: u8,
    /// Pacing shared by every call of the client and its clones: consecutive sends are
    /// at least `1 / requests_per_second` apart (see [`crate::Pacer`] for other processes).
    pub requests_per_second: f64,
    /// Total tries per call (1 = no retry).
    pub max_attempts: u32,
    /// First retry delay; doubles each retry (with jitter), capped at 30 s.
    pub retry_base_delay: Duration,
    /// Per-request timeout (connect + response + body).
    pub timeout: Duration,
    /// Longest `Retry-After` (on a 429) the client honours; a longer one is cut to this.
    pub retry_after_cap: Duration,
    /// How many send records [`crate::RakutenClient::sent_requests`] keeps (the newest).
    pub send_log_capacity: usize,
}

impl ClientConfig {
    /// A config with the given host and credentials and defaults for the rest:
    /// default endpoints, no Referer/Origin/affiliate id, formatVersion 2,
    /// 0.95 requests/s, 4 attempts, 1 s base retry delay, 20 s timeout, access key in
    /// the header, `Retry-After` honoured up to 30 s, the last 1024 sends recorded.
    pub fn new(base_url: Url, application_id: SecretString, access_key: SecretString) -> Self {
        Self {
            base_url,
            endpoints: Endpoints::default(),
            application_id,
            access_key,
            access_key_in: AccessKeyIn::Header,
            referer: None,
            origin: None,
            affiliate_id: None,
            format_version: 2,
            requests_per_second: 0.95,
            max_attempts: 4,
            retry_base_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(20),
            retry_after_cap: Duration::from_secs(30),
            send_log_capacity: 1024,
        }
    }

    /// The default base URL, [`DEFAULT_BASE_URL`].
    pub fn default_base_url() -> Url {
        Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL is a valid URL")
    }
}
