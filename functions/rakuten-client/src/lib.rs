//! Rakuten Ichiba API client for the ranking ETL.
//!
//! - [`RakutenClient`]: Item Ranking, Item Search (by `itemCode`), Genre Search
//!   and Tag Search over HTTP, paced by one shared rate limiter, retried with
//!   exponential backoff on 429/5xx/timeouts/connection errors.
//! - [`models`]: tolerant parsers for every wire variant (`formatVersion` 1 and
//!   2, numbers as strings, missing empty lists), usable without HTTP.
//!
//! Credentials never appear in errors or logs: units are labelled with the API
//! name and the non-secret parameters only.

mod client;
mod config;
mod error;
mod lenient;
pub mod models;

pub use client::{
    ClientStats, Fetched, Pacer, RakutenClient, RankingQuery, SentRequest, Slot, StatsScope,
    MAX_RANKING_PAGE, MAX_TAG_IDS,
};
pub use config::{AccessKeyIn, ClientConfig, Endpoints, DEFAULT_BASE_URL};
pub use error::{ApiError, ErrorKind};
pub use models::{
    parse_error_body, parse_genre, parse_item_search, parse_ranking, parse_tags, GenreNode,
    GenreResponse, ItemSearchPage, RankingItem, RankingPage, SearchItem, Tag, TagGroup,
    TagResponse,
};
