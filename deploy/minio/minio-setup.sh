#!/bin/sh
# One S3 user per SorAPI role, each allowed only its own actions on the bucket (run by compose's
# minio-setup; idempotent). render: put objects, read input images (tasks/*/inputs/*); orchestrator:
# read (presigned webhook links), list and delete (retention); api: read (presigned download links),
# the bucket check of /readyz, and put input images (tasks/*/inputs/*).
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing local/sorapi
for role in api orchestrator render; do
  mc admin policy create local "sorapi-$role" "/setup/policy-$role.json"
done
mc admin user add local sorapi-api "$S3_API_SECRET"
mc admin user add local sorapi-orchestrator "$S3_ORCHESTRATOR_SECRET"
mc admin user add local sorapi-render "$S3_RENDER_SECRET"
for role in api orchestrator render; do
  mc admin policy attach local "sorapi-$role" --user "sorapi-$role" || true  # already attached on a rerun
done
