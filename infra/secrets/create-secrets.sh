#!/usr/bin/env bash
# Creates the Secrets the lethe stack reads (names and keys as in this folder's templates),
# with random passwords and a random subject-hash key. Existing Secrets are left untouched, so
# running it twice is safe. Needs kubectl pointed at the cluster.
#
#   infra/secrets/create-secrets.sh [--namespace kubeflow] [--s3-from-kfp] [--dry-run]
#
# --s3-from-kfp  copy the S3 keys of KFP's own object store (Secret mlpipeline-minio-artifact,
#                SeaweedFS) instead of generating new ones: the production overlay's setting.
# --dry-run      print the Secrets as YAML instead of creating them.
set -euo pipefail

namespace=kubeflow
s3_from_kfp=0
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) namespace="$2"; shift 2 ;;
    --s3-from-kfp) s3_from_kfp=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "create-secrets.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

kc() { kubectl --namespace "$namespace" "$@"; }
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
exists() { [ "$dry_run" = 0 ] && kc get secret "$1" >/dev/null 2>&1; }
secret_value() { kc get secret "$1" -o "jsonpath={.data.$2}" | base64 -d; }

create() {  # create NAME --from-literal=... ; skips an existing Secret
  local name="$1"; shift
  if exists "$name"; then
    echo "secret/$name exists: kept" >&2
    return
  fi
  if [ "$dry_run" = 1 ]; then
    kc create secret generic "$name" "$@" --dry-run=client -o yaml
    echo "---"
  else
    kc create secret generic "$name" "$@"
  fi
}

if [ "$s3_from_kfp" = 1 ]; then
  access_key="$(secret_value mlpipeline-minio-artifact accesskey)"
  secret_key="$(secret_value mlpipeline-minio-artifact secretkey)"
else
  access_key="lethe-$(random | cut -c1-12)"
  secret_key="$(random)"
fi
create lethe-s3 --from-literal=AWS_ACCESS_KEY_ID="$access_key" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$secret_key"

# The database URLs must carry the passwords PostgreSQL was initialised with.
if exists lethe-postgres; then
  mlflow_password="$(secret_value lethe-postgres MLFLOW_DB_PASSWORD)"
  lethe_password="$(secret_value lethe-postgres LETHE_DB_PASSWORD)"
else
  mlflow_password="$(random)"
  lethe_password="$(random)"
fi
create lethe-postgres --from-literal=POSTGRES_PASSWORD="$(random)" \
  --from-literal=MLFLOW_DB_PASSWORD="$mlflow_password" \
  --from-literal=LETHE_DB_PASSWORD="$lethe_password"
create lethe-ledger --from-literal=url="postgresql+psycopg://lethe:${lethe_password}@postgres:5432/lethe"
create lethe-mlflow-db --from-literal=url="postgresql+psycopg://mlflow:${mlflow_password}@postgres:5432/mlflow"

create lethe-subject-key --from-literal=key="$(random)"
