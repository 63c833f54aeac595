#!/bin/sh
# Runs one segeval evaluation on the Flink session cluster, through the Beam
# Flink job server, and waits for it: the CLI prints the summary when the job
# is done. Extra arguments are passed on to segeval (e.g. --num_classes=19).
#
# Run it inside the cluster (the nightly CronJob does, with the image of
# deploy/flink/Dockerfile): the job server announces its artifact endpoint
# at its pod IP. GCS access comes from the pod's service account.
#
#   INPUT='gs://bucket/preds/*.tar' OUTPUT='gs://bucket/segeval/{date}/{run_id}' submit.sh
set -eu

: "${INPUT:?set INPUT to comma-separated gs:// globs of tar shards}"
: "${OUTPUT:?set OUTPUT to a gs:// prefix, {date} and {run_id} are expanded}"
JOBSERVER="${JOBSERVER:-segeval-beam-jobserver:8099}"
SEGEVAL="${SEGEVAL:-/usr/local/bin/segeval}"

# EXTERNAL on localhost:50000: each TaskManager asks the Go SDK worker pool
# in its own pod (the beam-worker-pool sidecar) to start workers, which fetch
# the staged --worker_binary, this very binary.
exec "$SEGEVAL" \
  --runner=flink \
  --endpoint="$JOBSERVER" \
  --environment_type=EXTERNAL \
  --environment_config=localhost:50000 \
  --worker_binary="$SEGEVAL" \
  --job_name=segeval \
  --input="$INPUT" \
  --output="$OUTPUT" \
  "$@"
