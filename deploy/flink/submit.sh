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
# Flink does not need job names to be unique: the date only tells nights
# apart in its UI and in the job server's log.
DAY="$(date -u +%Y%m%d)"

# EXTERNAL on localhost:50000: each TaskManager asks the Go SDK worker pool
# in its own pod (the beam-worker-pool sidecar) to start workers, which fetch
# the staged --worker_binary, this very binary.
#
# --parallelism: all the slots of flink-session.yaml's cluster, 4 TaskManagers
# x 2 slots (deploy/capacity.json; go test ./deploy checks). Beam's Flink
# runner does not ask the cluster: without it the job server looks for
# parallelism.default in its own Flink configuration, finds none, and runs
# every stage with parallelism 1: one slot, one TaskManager's 2 cores for the
# whole night, 3 to 6 hours instead of one. An argument --parallelism=N
# overrides it (the last value of a flag wins).
exec "$SEGEVAL" \
  --runner=flink \
  --endpoint="$JOBSERVER" \
  --environment_type=EXTERNAL \
  --environment_config=localhost:50000 \
  --worker_binary="$SEGEVAL" \
  --parallelism=8 \
  --job_name="segeval-$DAY" \
  --input="$INPUT" \
  --output="$OUTPUT" \
  "$@"
