#!/usr/bin/env bash
# The browser tests, run again and again beside a CPU hog: how many runs pass?
#
#   bash bench/browser_soak.sh                     # 20 runs of tests/test_browser.py, 2 busy processes beside them
#   bash bench/browser_soak.sh 20 -k "keys_pressed_while_busy or review_with_keyboard"   # only the keyboard tests
#   HOGS=0 bash bench/browser_soak.sh 5            # without the hog
#   FILES="tests/test_browser.py tests/test_browser_sessions.py tests/test_browser_safety.py" bash bench/browser_soak.sh 20
#                                                  # every browser test file, in turn within each run
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
FILES=${FILES:-tests/test_browser.py}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/xi-soak-XXXXXX")

hogs=()
stop_hogs() { for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done; }
trap stop_hogs EXIT
trap 'exit 130' INT TERM  # stopping the script stops the hog (EXIT trap); it does not go on to the next run
for _ in $(seq 1 "$HOGS"); do
  ( while :; do :; done ) &
  hogs+=($!)
done

echo "$(date -u '+%Y-%m-%d %H:%M') UTC · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') · $(nproc) cores"
echo "hog: $HOGS busy processes · pytest $FILES $* · $RUNS runs · logs in $LOGS"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A passed
total=0; runs=0
for i in $(seq 1 "$RUNS"); do
  for f in $FILES; do
    name=$(basename "$f" .py)
    t0=$(date +%s.%N)
    if "$PY" -m pytest -q -p no:cacheprovider "$f" "$@" >"$LOGS/run-$i-$name.log" 2>&1; then
      passed[$name]=$(( ${passed[$name]:-0} + 1 )); total=$((total + 1)); verdict=pass
    else
      verdict="FAIL ($(grep -m1 -E '^FAILED|^ERROR' "$LOGS/run-$i-$name.log" || tail -n1 "$LOGS/run-$i-$name.log"))"
    fi
    runs=$((runs + 1))
    printf 'run %2d %s: %s · %.0f s · load %s\n' "$i" "$name" "$verdict" "$(echo "$(date +%s.%N) - $t0" | bc)" \
      "$(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
for f in $FILES; do name=$(basename "$f" .py); echo "$name: passed ${passed[$name]:-0} of $RUNS"; done
[ "$total" -eq "$runs" ]
