#!/usr/bin/env bash
# Creates a Cloud Scheduler job that launches the segeval Flex Template
# (built by deploy/dataflow/build_and_run.sh) every night at 03:00 UTC, with
# the launch request of dataflow_launch.json. Each run writes to its own
# gs://$BUCKET/segeval/runs/{date}/{run_id}: segeval expands both at launch.
#
# Needs: $SCHEDULER_SA, a service account that Cloud Scheduler acts as, with
# roles/dataflow.developer on the project and roles/iam.serviceAccountUser on
# Dataflow's worker service account. To change the job later, run
# `gcloud scheduler jobs update http` with the same flags.
#
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket \
#   SCHEDULER_SA=segeval-scheduler@my-project.iam.gserviceaccount.com \
#   deploy/schedules/dataflow_nightly.sh
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}" "${SCHEDULER_SA:?set SCHEDULER_SA}"

body="$(mktemp)"
trap 'rm -f "$body"' EXIT
sed -e "s|YOUR_BUCKET|${BUCKET}|g" "$(dirname "$0")/dataflow_launch.json" >"$body"

gcloud scheduler jobs create http segeval-dataflow-nightly \
  --project="$PROJECT" \
  --location="$REGION" \
  --schedule="0 3 * * *" \
  --time-zone="Etc/UTC" \
  --uri="https://dataflow.googleapis.com/v1b3/projects/${PROJECT}/locations/${REGION}/flexTemplates:launch" \
  --http-method=POST \
  --headers="Content-Type=application/json" \
  --message-body-from-file="$body" \
  --oauth-service-account-email="$SCHEDULER_SA" \
  --oauth-token-scope="https://www.googleapis.com/auth/cloud-platform"
