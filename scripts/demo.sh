#!/usr/bin/env bash
# Set up, ingest the bundled ten-language demo corpus, run the pipeline on the embedded models, open the review app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export XINSTRUCT_DB=${XINSTRUCT_DB:-store/demo.duckdb}
XI=.venv/bin/xinstruct
$XI run --config xinstruct/data/demo_pipeline.yaml
$XI users add admin --role admin --password "${XINSTRUCT_ADMIN_PASSWORD:-admin-demo}" --replace
$XI users add reviewer --role reviewer --langs sw,ur,th --password "${XINSTRUCT_REVIEWER_PASSWORD:-review-demo}" --replace
echo "Review app: http://localhost:${PORT:-8501}  (admin / admin-demo, reviewer / review-demo)"
exec $XI app --port "${PORT:-8501}"
