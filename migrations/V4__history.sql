-- ichiba-collector schema, version 4: history for the site that reads the rankings.
-- The queries a ranking site runs over these views are in docs/site-queries.md.

-- Both views compare a target's (ranking_genre_id, period) complete snapshot with the
-- target's PREVIOUS COMPLETE snapshot: the newest complete snapshot_date before it, which
-- is yesterday on a normal day but may be older when a day was missed or incomplete. An
-- incomplete snapshot (missing ranks) is never a "today" nor a "previous day" here:
-- comparing with one would call every missing item a drop-out and a re-entry.
-- Stale snapshots (complete, but the same lastBuildDate as the one before) are kept: the
-- site sees a day without movement, and can skip it through rakuten_ranking_snapshots.stale.

-- Finding the previous complete snapshot of a target is a backwards scan of this index.
CREATE INDEX rakuten_ranking_snapshots_complete_idx
    ON rakuten_ranking_snapshots (ranking_genre_id, period, snapshot_date) WHERE complete;

-- Per target and complete snapshot, every ranked item with its rank on the previous
-- complete snapshot. The day's rows come through the primary key of rakuten_rankings;
-- each item's previous rank through rakuten_rankings_item_idx (item_code, snapshot_date).
--   previous_rank           the item's rank on previous_snapshot_date; NULL when it was
--                           not ranked there, or when there is no previous snapshot
--   rank_delta              previous_rank - rank: positive = climbed, negative = fell,
--                           0 = held; NULL when previous_rank is NULL
--   new_entry               not ranked on the previous complete snapshot. On a target's
--                           FIRST complete snapshot there is nothing to compare with:
--                           new_entry is false, previous_rank, rank_delta and
--                           previous_snapshot_date are NULL (the site should not announce
--                           a whole ranking as new)
--   previous_snapshot_date  the snapshot compared with (NULL on the first one), so a site
--                           can say "since 3 days ago" after a gap
-- An item listed at two ranks of the previous snapshot (a quality violation) counts with
-- its best rank there, so each row of rakuten_rankings gives exactly one row here.
CREATE VIEW rakuten_ranking_movers AS
SELECT r.snapshot_date,
       r.ranking_genre_id,
       r.period,
       r.item_code,
       r.rank,
       p.rank                                          AS previous_rank,
       p.rank - r.rank                                 AS rank_delta,
       (prev.snapshot_date IS NOT NULL AND p.rank IS NULL) AS new_entry,
       prev.snapshot_date                              AS previous_snapshot_date
FROM rakuten_ranking_snapshots s
JOIN rakuten_rankings r
  ON r.snapshot_date = s.snapshot_date
 AND r.ranking_genre_id = s.ranking_genre_id
 AND r.period = s.period
CROSS JOIN LATERAL (
    SELECT max(c.snapshot_date) AS snapshot_date
    FROM rakuten_ranking_snapshots c
    WHERE c.complete
      AND c.ranking_genre_id = s.ranking_genre_id
      AND c.period = s.period
      AND c.snapshot_date < s.snapshot_date
) prev
CROSS JOIN LATERAL (
    SELECT min(o.rank) AS rank
    FROM rakuten_rankings o
    WHERE o.item_code = r.item_code
      AND o.snapshot_date = prev.snapshot_date
      AND o.ranking_genre_id = s.ranking_genre_id
      AND o.period = s.period
) p
WHERE s.complete;

-- Per target and complete snapshot, the items of the previous complete snapshot that are
-- not in this one (they fell out of the ranked pages, or left the ranking). None on a
-- target's first complete snapshot. previous_rank is the item's (best) rank on
-- previous_snapshot_date.
CREATE VIEW rakuten_ranking_dropouts AS
SELECT s.snapshot_date,
       s.ranking_genre_id,
       s.period,
       o.item_code,
       min(o.rank)        AS previous_rank,
       prev.snapshot_date AS previous_snapshot_date
FROM rakuten_ranking_snapshots s
CROSS JOIN LATERAL (
    SELECT max(c.snapshot_date) AS snapshot_date
    FROM rakuten_ranking_snapshots c
    WHERE c.complete
      AND c.ranking_genre_id = s.ranking_genre_id
      AND c.period = s.period
      AND c.snapshot_date < s.snapshot_date
) prev
JOIN rakuten_rankings o
  ON o.snapshot_date = prev.snapshot_date
 AND o.ranking_genre_id = s.ranking_genre_id
 AND o.period = s.period
WHERE s.complete
  AND NOT EXISTS (
      SELECT 1 FROM rakuten_rankings r
      WHERE r.item_code = o.item_code
        AND r.snapshot_date = s.snapshot_date
        AND r.ranking_genre_id = s.ranking_genre_id
        AND r.period = s.period
  )
GROUP BY s.snapshot_date, s.ranking_genre_id, s.period, o.item_code, prev.snapshot_date;
