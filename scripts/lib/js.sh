# shellcheck shell=bash
# Installs the JavaScript SDK's pinned dependencies (sdk/js/package-lock.json).
#
#   source scripts/lib/js.sh
#   ensure_sdk_deps && npm --prefix sdk/js test
#
# `npm ci` runs only when node_modules is missing or older than the lockfile, so repeated
# runs are quick.

# The sdk/js directory of this clone.
_keystead_sdk_dir() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  printf '%s\n' "$here/../../sdk/js"
}

# Installs sdk/js's dependencies exactly as locked. Returns non-zero on failure.
ensure_sdk_deps() {
  local dir
  dir="$(cd "$(_keystead_sdk_dir)" && pwd)" || {
    echo "ensure_sdk_deps: sdk/js is missing" >&2
    return 1
  }
  command -v node >/dev/null || {
    echo "ensure_sdk_deps: node is required (Node.js 20.19 or later)" >&2
    return 1
  }
  command -v npm >/dev/null || {
    echo "ensure_sdk_deps: npm is required (Node.js)" >&2
    return 1
  }
  if [[ -f "$dir/node_modules/.package-lock.json" && "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]]; then
    return 0
  fi
  echo "ensure_sdk_deps: npm ci in sdk/js" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || {
    echo "ensure_sdk_deps: npm ci in sdk/js failed" >&2
    return 1
  }
}
