#!/usr/bin/env bash
# Builds the segeval Flex Template (image and template spec) and runs it once.
#
# Needs: gcloud logged in with rights to Cloud Build, Artifact Registry
# (repository $REPO, docker format, in $REGION) and the bucket; Dataflow's
# worker service account needs read access to the inputs and write access to
# the outputs and gs://$BUCKET/segeval/.
#
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket \
#   INPUT='gs://my-bucket/preds/*.tar' deploy/dataflow/build_and_run.sh
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}" "${INPUT:?set INPUT to gs:// globs of tar shards}"
REPO="${REPO:-segeval}"
TAG="${TAG:-$(git rev-parse --short HEAD)}"
IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${REPO}/segeval-flex:${TAG}"
TEMPLATE="gs://${BUCKET}/segeval/templates/segeval.json"

cd "$(dirname "$0")/../.."

gcloud builds submit --project="$PROJECT" \
  --config=deploy/cloudbuild.yaml \
  --substitutions="_DOCKERFILE=deploy/dataflow/Dockerfile,_IMAGE=${IMAGE}" .

gcloud dataflow flex-template build "$TEMPLATE" \
  --project="$PROJECT" \
  --image="$IMAGE" \
  --sdk-language=GO \
  --metadata-file=deploy/dataflow/metadata.json

# Job names only need to differ from those of active jobs: the time keeps
# two runs started by hand apart.
#
# Workers as in deploy/capacity.json (deploy/README.md, Sizing; go test
# ./deploy checks): 50,000 Cityscapes images in about an hour on 2 workers of
# 4 vCPU, which start together rather than being autoscaled up to.
#
# execute_async: the launcher must return once the job is submitted; see
# deploy/README.md, "The launcher does not wait".
#
# ^~^ makes ~ the separator between parameters: input may hold commas.
gcloud dataflow flex-template run "segeval-$(date -u +%Y%m%d-%H%M%S)" \
  --project="$PROJECT" \
  --region="$REGION" \
  --template-file-gcs-location="$TEMPLATE" \
  --temp-location="gs://${BUCKET}/segeval/tmp" \
  --staging-location="gs://${BUCKET}/segeval/staging" \
  --worker-machine-type=n2-standard-4 \
  --num-workers=2 \
  --max-workers=2 \
  --parameters="^~^input=${INPUT}~output=gs://${BUCKET}/segeval/runs/{date}/{run_id}~execute_async=true"
