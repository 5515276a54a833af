#!/usr/bin/env bash
# The performance figures of issue 10, side by side in one run (docs/performance.md):
#   1. requests per simulated day over 7 days: `collector run --as-of` day by day, the old
#      Item policy (ITEM_REFRESH_HOURS=20) and the default (ITEM_REFRESH_DAYS=7), each in a
#      database of its own, both weeks at once; with the oldest details of a ranked item;
#   2. the jobs at the real pace (sandbox --rate-limit 1, default pace, >= 300 requests,
#      Genre ∥ Tag as two processes): 429s and achieved rate, and Ranking + Item against a
#      naive one-INSERT-per-row collector at the same pace (benches/jobnet.rs);
#   3. process start to first request, TLS and plain, the Ranking binary of BENCH_OLD_REV
#      beside the current one (benches/startup.rs);
#   4. bulk load against one INSERT per row (benches/load.rs).
# Not a test: nothing here passes or fails on time. About 25 minutes on 2 cores.
#
#   scripts/bench.sh                       # everything
#   BENCH_ONLY="week load" scripts/bench.sh
#
# Env: BENCH_ONLY (any of: week jobnet startup load), BENCH_OLD_REV (default c58abca, the
# tree before send-time pacing and the shared connection; "none" skips it), BENCH_FIRST_DAY
# (default 2026-11-23), BENCH_DAYS (7), BENCH_ITEMS (Item requests in the paced run, 200),
# TEST_DATABASE_URL (a PostgreSQL with TLS; default the local one), BENCH_NO_BUILD=1 (use
# the binaries already built), BENCH_EXTRA_BINS ("label=path …": more Ranking binaries
# for the startup section).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ONLY="${BENCH_ONLY:-week jobnet startup load}"
OLD_REV="${BENCH_OLD_REV:-c58abca}"
FIRST_DAY="${BENCH_FIRST_DAY:-2026-11-23}"
DAYS="${BENCH_DAYS:-7}"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
ADMIN_URL="$TEST_DATABASE_URL"
WORK="$(mktemp -d /tmp/icx-bench.XXXXXX)"
SUMMARY="$WORK/summary"
: > "$SUMMARY"
want() { [[ " $ONLY " == *" $1 "* ]]; }
say() { printf '\n== %s\n' "$*" >&2; }
url_for() { # database URL of db $1 on the server of TEST_DATABASE_URL
  python3 - "$ADMIN_URL" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))
EOF
}
DBS=("icx_bench_week_old_$$" "icx_bench_week_new_$$")
cleanup() {
  for db in "${DBS[@]}"; do psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  say "building (release)"
  cargo build --release -q -p collector -p ranking
  cargo bench -q --no-run -p ichiba-collector-tests >/dev/null 2>&1 || cargo bench --no-run -p ichiba-collector-tests
fi

# --- 1. a simulated week ------------------------------------------------------------
week() { # $1 label, $2.. extra env; prints "day requests oldest_days" per day
  local label="$1"; shift
  local db="icx_bench_week_${label}_$$"
  local dir="$WORK/week-$label"
  mkdir -p "$dir"
  (
    cd "$dir"
    export APP_ENV=local DATABASE_URL="$(url_for "$db")" RAW_STORE="file://$dir/raw" RUST_LOG=warn "$@"
    unset RAKUTEN_APPLICATION_ID RAKUTEN_REQUESTS_PER_SECOND ITEM_DAILY_REQUEST_BUDGET
    for ((d = 0; d < DAYS; d++)); do
      day="$(date -u -d "$FIRST_DAY + $d day" +%F)"
      "$ROOT/target/release/collector" run --as-of "$day" --item-slice-secs 600 > "$dir/$day.out" 2> "$dir/$day.err" \
        || { echo "collector run --as-of $day ($label) failed:" >&2; tail -5 "$dir/$day.err" >&2; exit 1; }
      requests="$(awk '$1 ~ /^(ranking|item|genre|tag|is_active)$/ && $2 == "succeeded" {n += $8} END {print n + 0}' "$dir/$day.out")"
      # Oldest details of an item ranked that day, as of the simulated time of the run.
      oldest="$(psql -qtA "$DATABASE_URL" -c "
        SELECT round(coalesce(max(extract(epoch FROM
                 ((DATE '$day' + (now() AT TIME ZONE 'Asia/Tokyo')::time) AT TIME ZONE 'Asia/Tokyo') - f.checked_at)) / 86400, 0)::numeric, 2)
        FROM (SELECT DISTINCT item_code FROM rakuten_rankings WHERE snapshot_date = '$day') r
        JOIN etl_refresh f ON f.entity = 'item' AND f.key = r.item_code")"
      echo "$day $requests $oldest"
    done
  ) > "$WORK/week-$label.txt"
}
if want week; then
  say "a simulated week, $DAYS days from $FIRST_DAY (collector run --as-of; both policies at once)"
  week old ITEM_REFRESH_HOURS=20 &
  old_pid=$!
  week new &
  new_pid=$!
  wait "$old_pid"; wait "$new_pid"
  {
    echo "requests per simulated day (collector run --as-of, built-in sandbox's churn, 34 ranking pages):"
    printf '  %-12s %22s %22s\n' "day" "ITEM_REFRESH_HOURS=20" "ITEM_REFRESH_DAYS=7"
    paste -d' ' "$WORK/week-old.txt" "$WORK/week-new.txt" | awk '{printf "  %-12s %15d (%4.2f d) %15d (%4.2f d)\n", $1, $2, $3, $5, $6}'
    paste -d' ' "$WORK/week-old.txt" "$WORK/week-new.txt" | awk -v days="$DAYS" '
      NR > 1 {o += $2; n += $5}
      {if ($6 > max) max = $6}
      END {printf "  steady day (days 2-%d, mean): %.0f vs %.0f requests = %.1f %%; oldest details of a ranked item (new policy): %.2f days\n", days, o/(days-1), n/(days-1), 100*n/o, max}'
    echo "  (in brackets: the oldest Item Search details of an item ranked that day, in days)"
  } | tee -a "$SUMMARY"
fi

# --- 2. the jobs at the real pace ---------------------------------------------------
if want jobnet; then
  say "the jobs at the real pace (benches/jobnet.rs; about 6 minutes)"
  cargo bench -q --bench jobnet 2>/dev/null | tee "$WORK/jobnet.txt"
  grep -A4 '^the jobs at the real pace' "$WORK/jobnet.txt" >> "$SUMMARY" || true
fi

# --- 3. process start to first request ----------------------------------------------
if want startup; then
  bins="new=$ROOT/target/release/ranking"
  if [ "$OLD_REV" != none ]; then
    # A target directory of its own: the old tree has no .cargo/config.toml, so its aws-lc
    # is built with jitter entropy (as it was then); sharing target/ would rebuild aws-lc
    # and everything above it back and forth between the two.
    old_target="$ROOT/target/bench-old"
    old_bin="$old_target/release/ranking-$OLD_REV"
    if [ ! -x "$old_bin" ]; then
      say "building the Ranking binary of $OLD_REV (in target/bench-old: a full release build the first time)"
      src="$WORK/old-src"
      mkdir -p "$src"
      git archive "$OLD_REV" | tar -x -C "$src"
      sed -i "s/^name = \"ranking\"$/name = \"ranking-$OLD_REV\"/" "$src/functions/ranking/Cargo.toml"
      (cd "$src" && CARGO_TARGET_DIR="$old_target" cargo build --release -q -p "ranking-$OLD_REV")
    fi
    bins="old($OLD_REV)=$old_bin $bins"
  fi
  # e.g. BENCH_EXTRA_BINS="nojitter=/tmp/t/release/ranking": more binaries side by side.
  for extra in ${BENCH_EXTRA_BINS:-}; do
    if [ -x "${extra#*=}" ]; then bins="$bins $extra"; else echo "skipping $extra: not built" >&2; fi
  done
  say "process start to first request (benches/startup.rs)"
  BENCH_BINS="$bins" cargo bench -q --bench startup 2>/dev/null | tee "$WORK/startup.txt"
  grep -A4 '^process start to first' "$WORK/startup.txt" >> "$SUMMARY" || true
fi

# --- 4. bulk load ---------------------------------------------------------------------
if want load; then
  say "bulk load (benches/load.rs)"
  cargo bench -q --bench load 2>/dev/null | tee "$WORK/load.txt"
  grep -A4 '^load ranking rows' "$WORK/load.txt" >> "$SUMMARY" || true
fi

printf '\n================ summary (%s, %s cores, %s) ================\n' "$(git rev-parse --short HEAD)" "$(nproc)" "$(date -u +%FT%TZ)"
cat "$SUMMARY"
