//! The manifest's `unit` strings taken apart: they are what the client asked
//! (`ranking genreId=0 period=realtime page=3`, `item itemCode=shop:1`,
//! `genre genreId=100283`, `tags tagId=1,2,3`), so replay knows each body's request
//! without guessing from its key.

use crate::config::RankingTarget;

/// One request, as named by its unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Ranking { target: RankingTarget, page: u32 },
    Item { item_code: String },
    Genre { genre_id: i64 },
    Tags { tag_ids: Vec<i64> },
}

/// Parses a unit string; `None` when it is not one the client writes.
pub fn parse(unit: &str) -> Option<Unit> {
    let (kind, rest) = unit.split_once(' ')?;
    let param = |name: &str| {
        rest.split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    match kind {
        "ranking" => Some(Unit::Ranking {
            target: RankingTarget {
                genre_id: param("genreId")?.parse().ok()?,
                period: param("period").map(str::to_string),
            },
            page: param("page")?.parse().ok()?,
        }),
        // Item codes hold no spaces; everything after `itemCode=` is the code.
        "item" => Some(Unit::Item {
            item_code: rest.strip_prefix("itemCode=")?.to_string(),
        }),
        "genre" => Some(Unit::Genre {
            genre_id: param("genreId")?.parse().ok()?,
        }),
        "tags" => Some(Unit::Tags {
            tag_ids: param("tagId")?
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_the_client_writes() {
        assert_eq!(
            parse("ranking genreId=0 page=3"),
            Some(Unit::Ranking {
                target: RankingTarget {
                    genre_id: 0,
                    period: None
                },
                page: 3
            })
        );
        assert_eq!(
            parse("ranking genreId=100283 period=realtime page=12"),
            Some(Unit::Ranking {
                target: RankingTarget {
                    genre_id: 100283,
                    period: Some("realtime".into())
                },
                page: 12
            })
        );
        assert_eq!(
            parse("item itemCode=shop-01:10000123"),
            Some(Unit::Item {
                item_code: "shop-01:10000123".into()
            })
        );
        assert_eq!(
            parse("genre genreId=558885"),
            Some(Unit::Genre { genre_id: 558885 })
        );
        assert_eq!(
            parse("tags tagId=1000317,1000318"),
            Some(Unit::Tags {
                tag_ids: vec![1000317, 1000318]
            })
        );
        assert_eq!(parse("ranking genreId=x page=1"), None);
        assert_eq!(parse("weather city=tokyo"), None);
        assert_eq!(parse(""), None);
    }
}
