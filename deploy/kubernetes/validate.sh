#!/usr/bin/env bash
# Checks the manifests of this folder against the Kubernetes API's schemas, without a cluster
# (none can run here): kubernetes-models from the npm registry (the API's OpenAPI schemas, for
# ajv) validates every object, after the `yaml` package parsed it. Both are pinned and kept in
# .deps/kubernetes-validate; npm verifies their integrity. Exits non-zero on any problem.
#
#   deploy/kubernetes/validate.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deps=$here/../../.deps/kubernetes-validate
packages=(kubernetes-models@5.1.0 yaml@2.8.1)
stamp="$deps/.installed ${packages[*]}"
if [[ ! -f $stamp ]]; then
  command -v npm >/dev/null || { echo "validate: npm is missing: run scripts/setup.sh" >&2; exit 1; }
  rm -rf "$deps"
  mkdir -p "$deps"
  npm install --prefix "$deps" --no-audit --no-fund --no-save --silent "${packages[@]}" ||
    { echo "validate: npm install ${packages[*]} failed" >&2; exit 1; }
  touch "$stamp"
fi
exec node "$here/validate.mjs" "$deps/node_modules" "$here"/*.yaml
