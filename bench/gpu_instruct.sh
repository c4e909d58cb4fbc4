#!/usr/bin/env bash
# The paper's last stage on a GPU machine: does the reviewed data make a better model than the same documents before
# review? Export both, tune a 7-8B base on each, answer Vicuna 80 in the chosen languages, judge the two answer sets
# pairwise in both orders with a strong model, and print the per-language report.
#
#   BASE=/models/Meta-Llama-3-8B JUDGE=/models/Qwen2.5-72B-Instruct-AWQ LANGS="fi id sw" bash bench/gpu_instruct.sh
#   JUDGE=gpt-4o JUDGE_URL=https://api.openai.com/v1 OPENAI_API_KEY=... bash bench/gpu_instruct.sh   # hosted judge
#
# Needs: a CUDA GPU, vLLM in the environment (`pip install '.[gpu]'`, or the machine's own), the base and judge models
# on local disk (no hub access is assumed), and a store with reviewed candidates ($XINSTRUCT_DB or DB=...).
# Every step is resumable: rerun the script after an interruption and finished work is skipped (exports are redone
# only with OVERWRITE=1; training is skipped when the model name is registered; answers and judgements resume).
#
# Settings (environment):
#   DB          the store (default $XINSTRUCT_DB or store/xinstruct.duckdb)
#   BASE        the base model folder to tune (required)
#   JUDGE       the judge: a local instruct model folder, or the model name an endpoint serves (required)
#   JUDGE_URL   an OpenAI-compatible endpoint (up to /v1) to judge with; without it a local `vllm serve $JUDGE` is
#               started on JUDGE_PORT (default 8011) for the judging and stopped at the end
#   JUDGE_TP    GPUs for the local judge server (tensor parallel, default 1)
#   KEY_ENV     the variable holding the endpoint's key (default OPENAI_API_KEY; a local server needs none)
#   LANGS       languages (default "fi id sw")
#   QUESTIONS   the question file (default ../shared/data/eval/vicuna80_questions.jsonl)
#   NAME        prefix of the two model names (default x-instruct); models NAME-reviewed and NAME-unreviewed
#   OUT         work folder for exports and the report (default runs/gpu_instruct)
#   TRAIN_ARGS, ANSWER_ARGS, JUDGE_ARGS   extra options for `xinstruct train instruct`, `eval answer`, `eval judge`
#   PY          the interpreter (default .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
XI=("$PY" -c "import sys; from xinstruct.cli import main; sys.argv[0] = 'xinstruct'; main()")
"$PY" -c "import xinstruct.cli" 2>/dev/null || { echo "xinstruct is not importable with $PY" >&2; exit 2; }
: "${BASE:?set BASE to the base model folder (e.g. a local Meta-Llama-3-8B)}"
: "${JUDGE:?set JUDGE to the judge model (a local instruct model folder, or an endpoint model name with JUDGE_URL)}"
DB=${DB:-${XINSTRUCT_DB:-store/xinstruct.duckdb}}
LANGS=${LANGS:-"fi id sw"}
QUESTIONS=${QUESTIONS:-../shared/data/eval/vicuna80_questions.jsonl}
NAME=${NAME:-x-instruct}
OUT=${OUT:-runs/gpu_instruct}
KEY_ENV=${KEY_ENV:-OPENAI_API_KEY}
JUDGE_PORT=${JUDGE_PORT:-8011}
JUDGE_TP=${JUDGE_TP:-1}
read -r -a TRAIN_EXTRA <<< "${TRAIN_ARGS:-}"
read -r -a ANSWER_EXTRA <<< "${ANSWER_ARGS:-}"
read -r -a JUDGE_EXTRA <<< "${JUDGE_ARGS:-}"
A="$NAME-reviewed"
B="$NAME-unreviewed"
LANG_OPTS=()
for l in $LANGS; do LANG_OPTS+=(--lang "$l"); done

log() { echo "[$(date -u '+%H:%M:%S')] $*"; }
xi() { "${XI[@]}" "$@" --db "$DB"; }

# -- 0. the machine -------------------------------------------------------------------------------------------------
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || {
  echo "no GPU (nvidia-smi not found)" >&2; exit 2; }
"$PY" -c "import vllm; print('vllm', vllm.__version__)" || { echo "vLLM is missing: pip install '.[gpu]'" >&2; exit 2; }
[ -f "$QUESTIONS" ] || { echo "no question file at $QUESTIONS" >&2; exit 2; }
[ -f "$DB" ] || { echo "no store at $DB" >&2; exit 2; }
mkdir -p "$OUT"
START=$(date +%s)

# -- 1. the two datasets: reviewed pairs, and the same documents before review ----------------------------------------
for pair in "reviewed:accepted" "unreviewed:all"; do
  kind=${pair%%:*}; status=${pair#*:}
  if [ -f "$OUT/$kind/manifest.json" ] && [ "${OVERWRITE:-0}" != 1 ]; then
    log "export $kind: kept ($OUT/$kind)"
  else
    log "export $kind (--status $status)"
    again=()
    [ "${OVERWRITE:-0}" = 1 ] && again=(--overwrite)
    xi export --out "$OUT/$kind" --status "$status" "${LANG_OPTS[@]}" --template alpaca "${again[@]}"
  fi
done

# -- 2. tune the base on each (LoRA by default; see `xinstruct train instruct --help`) ---------------------------------
for kind in reviewed unreviewed; do
  name="$NAME-$kind"
  if "$PY" - "$DB" "$name" <<'EOF'
import sys
from xinstruct.store import Store
with Store(sys.argv[1]).session() as tx:
    sys.exit(0 if tx.scalar("SELECT 1 FROM model_versions WHERE name = ?", [sys.argv[2]]) else 1)
EOF
  then
    log "train $name: already registered"
  else
    log "train $name on $OUT/$kind from $BASE"
    xi train instruct --export "$OUT/$kind" --base "$BASE" --name "$name" "${TRAIN_EXTRA[@]}"
  fi
done

# -- 3. answer the questions in each language (resumable) -------------------------------------------------------------
for name in "$A" "$B"; do
  log "answer $QUESTIONS with $name in $LANGS"
  xi eval answer --model "$name" --questions "$QUESTIONS" "${LANG_OPTS[@]}" --backend vllm "${ANSWER_EXTRA[@]}"
done

# -- 4. judge A against B in both orders ------------------------------------------------------------------------------
SERVER_PID=""
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; true; }
trap stop_server EXIT INT TERM
if [ -n "${JUDGE_URL:-}" ]; then
  URL=$JUDGE_URL
else
  URL="http://127.0.0.1:$JUDGE_PORT/v1"
  log "starting the judge: vllm serve $JUDGE on port $JUDGE_PORT (log $OUT/judge_server.log)"
  "$PY" -m vllm.entrypoints.openai.api_server --model "$JUDGE" --served-model-name "$JUDGE" --host 127.0.0.1 \
    --port "$JUDGE_PORT" --tensor-parallel-size "$JUDGE_TP" --max-model-len 8192 > "$OUT/judge_server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 180); do  # up to 30 minutes for a large judge to load
    curl -sf "http://127.0.0.1:$JUDGE_PORT/v1/models" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the judge server exited; see $OUT/judge_server.log" >&2; exit 1; }
    sleep 10
  done
  curl -sf "http://127.0.0.1:$JUDGE_PORT/v1/models" >/dev/null || { echo "judge server not ready" >&2; exit 1; }
fi
log "judge $A vs $B with $JUDGE at $URL"
xi eval judge --a "$A" --b "$B" --judge "$JUDGE" --backend openai --base-url "$URL" --api-key-env "$KEY_ENV" \
  --concurrency 32 --batch-size 64 "${LANG_OPTS[@]}" "${JUDGE_EXTRA[@]}"
stop_server
SERVER_PID=""

# -- 5. the report --------------------------------------------------------------------------------------------------
xi eval report --a "$A" --b "$B" --judge "$JUDGE" --out "$OUT/report.json" | tee "$OUT/report.txt"
log "done in $(( ($(date +%s) - START) / 60 )) min; report in $OUT/report.txt and $OUT/report.json"
