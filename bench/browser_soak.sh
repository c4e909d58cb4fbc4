#!/usr/bin/env bash
# The browser tests, run again and again beside a CPU hog: how many runs pass?
#
#   bash bench/browser_soak.sh                     # 20 runs of tests/test_browser.py, 2 busy processes beside them
#   bash bench/browser_soak.sh 20 -k "keys_pressed_while_busy or review_with_keyboard"   # only the keyboard tests
#   HOGS=0 bash bench/browser_soak.sh 5            # without the hog
#
# Extra arguments go to pytest. The hog is $HOGS (default 2) shell busy loops, stopped when the script ends. Each run's
# output is kept in a temp folder (printed at the end) so a failure can be read. PY picks the interpreter
# (default .venv/bin/python). Prints one line per run (pass/fail, seconds, load average) and the count.
set -u
cd "$(dirname "$0")/.."
RUNS=${1:-20}
[ $# -gt 0 ] && shift
PY=${PY:-.venv/bin/python}
HOGS=${HOGS:-2}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/xi-soak-XXXXXX")

hogs=()
stop_hogs() { for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done; }
trap stop_hogs EXIT INT TERM
for _ in $(seq 1 "$HOGS"); do
  ( while :; do :; done ) &
  hogs+=($!)
done

echo "$(date -u '+%Y-%m-%d %H:%M') UTC · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') · $(nproc) cores"
echo "hog: $HOGS busy processes · pytest tests/test_browser.py $* · $RUNS runs · logs in $LOGS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
passed=0
for i in $(seq 1 "$RUNS"); do
  t0=$(date +%s.%N)
  if "$PY" -m pytest -q tests/test_browser.py "$@" >"$LOGS/run-$i.log" 2>&1; then
    passed=$((passed + 1)); verdict=pass
  else
    verdict="FAIL ($(grep -m1 -E '^FAILED|^ERROR' "$LOGS/run-$i.log" || tail -n1 "$LOGS/run-$i.log"))"
  fi
  printf 'run %2d: %s · %.0f s · load %s\n' "$i" "$verdict" "$(echo "$(date +%s.%N) - $t0" | bc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "passed $passed of $RUNS"
[ "$passed" -eq "$RUNS" ]
