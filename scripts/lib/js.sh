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

# The widget directory of this clone.
_keystead_widget_dir() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  printf '%s\n' "$here/../../widget"
}

# Builds the widget (widget/dist: index.html, widget.js, widget-style.css) that `keystead
# serve` serves under /widget/. It bundles the SDK's crypto from sdk/js/src, so sdk/js's
# dependencies are installed first. Skipped when dist is newer than every source (the
# widget's, the SDK's and both lockfiles). Returns non-zero on failure.
ensure_widget_built() {
  local dir sdk stamp newer
  ensure_sdk_deps || return 1
  dir="$(cd "$(_keystead_widget_dir)" && pwd)" || {
    echo "ensure_widget_built: widget/ is missing" >&2
    return 1
  }
  sdk="$(cd "$(_keystead_sdk_dir)" && pwd)"
  if [[ ! -f "$dir/node_modules/.package-lock.json" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    echo "ensure_widget_built: npm ci in widget" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || {
      echo "ensure_widget_built: npm ci in widget failed" >&2
      return 1
    }
  fi
  stamp="$dir/dist/widget.js"
  if [[ -f "$stamp" && -f "$dir/dist/index.html" ]]; then
    newer="$(find "$dir/src" "$dir/build.mjs" "$dir/package-lock.json" "$sdk/src" "$sdk/package-lock.json" \
      -newer "$stamp" -print -quit 2>/dev/null)"
    [[ -z "$newer" ]] && return 0
  fi
  echo "ensure_widget_built: building widget/dist" >&2
  (cd "$dir" && node build.mjs >&2) || {
    echo "ensure_widget_built: the widget build failed" >&2
    return 1
  }
}
