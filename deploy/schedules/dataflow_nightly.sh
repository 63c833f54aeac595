#!/usr/bin/env bash
# Launches the segeval Flex Template (built by deploy/dataflow/build_and_run.sh)
# every night at 03:00 UTC: Cloud Scheduler starts the workflow of
# dataflow_nightly_workflow.yaml with the launch request of
# dataflow_launch.json, and the workflow launches the job as
# segeval-nightly-YYYYMMDD (Cloud Scheduler alone can only post a fixed body,
# hence a fixed job name). Each run writes to its own
# gs://$BUCKET/segeval/runs/{date}/{run_id}: segeval expands both at launch.
#
# Needs: $SCHEDULER_SA, a service account that Cloud Scheduler and the
# workflow act as, with roles/workflows.invoker and roles/dataflow.developer
# on the project and roles/iam.serviceAccountUser on Dataflow's worker service
# account; the Workflows API enabled, in $REGION (the job's region). To change
# the request later, edit dataflow_launch.json and run this again: it
# redeploys the workflow and replaces the scheduler job.
#
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket \
#   SCHEDULER_SA=segeval-scheduler@my-project.iam.gserviceaccount.com \
#   deploy/schedules/dataflow_nightly.sh
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}" "${SCHEDULER_SA:?set SCHEDULER_SA}"
here="$(dirname "$0")"
WORKFLOW=segeval-nightly

gcloud workflows deploy "$WORKFLOW" \
  --project="$PROJECT" \
  --location="$REGION" \
  --source="$here/dataflow_nightly_workflow.yaml" \
  --service-account="$SCHEDULER_SA"

# The executions API takes the workflow's argument as a string of JSON: the
# launch request, on one line, with its quotes and backslashes escaped.
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
request="$(sed -e "s|YOUR_BUCKET|${BUCKET}|g" "$here/dataflow_launch.json" | tr -d '\n' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
printf '{"argument": "%s"}\n' "$request" >"$body"

# Replace the job an earlier run of this script created (`update http` takes
# other flags), such as one that posted to the launch API directly.
if gcloud scheduler jobs describe segeval-dataflow-nightly --project="$PROJECT" --location="$REGION" >/dev/null 2>&1; then
  gcloud scheduler jobs delete segeval-dataflow-nightly --project="$PROJECT" --location="$REGION" --quiet
fi
gcloud scheduler jobs create http segeval-dataflow-nightly \
  --project="$PROJECT" \
  --location="$REGION" \
  --schedule="0 3 * * *" \
  --time-zone="Etc/UTC" \
  --uri="https://workflowexecutions.googleapis.com/v1/projects/${PROJECT}/locations/${REGION}/workflows/${WORKFLOW}/executions" \
  --http-method=POST \
  --headers="Content-Type=application/json" \
  --message-body-from-file="$body" \
  --oauth-service-account-email="$SCHEDULER_SA" \
  --oauth-token-scope="https://www.googleapis.com/auth/cloud-platform"
