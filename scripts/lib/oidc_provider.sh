# shellcheck shell=bash
# Installs the real OpenID provider the tests start (panva's oidc-provider, pinned in
# crates/testkit/node/oidc-provider/package-lock.json) and says where it is.
#
#   source scripts/lib/oidc_provider.sh
#   ensure_oidc_provider    # installs if missing; exports KEYSTEAD_OIDC_PROVIDER_DIR
#   node "$KEYSTEAD_OIDC_PROVIDER_DIR/server.mjs" --port 0 --clients '[...]'
#
# The install lives outside the clone, in
# ${KEYSTEAD_TOOLS:-$HOME/.cache/keystead/tools}/oidc-provider-<lockfile hash>/, so a
# fresh checkout with the same lockfile reuses it. server.mjs and its key are copied in
# on every call (cheap), so edits to them need no reinstall.

# The directory holding package.json, package-lock.json, server.mjs and the test key.
_keystead_oidc_source_dir() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  printf '%s\n' "$here/../../crates/testkit/node/oidc-provider"
}

# Installs the pinned oidc-provider if missing, then exports KEYSTEAD_OIDC_PROVIDER_DIR.
# Returns non-zero on failure.
ensure_oidc_provider() {
  local src tools hash dir tmp
  src="$(cd "$(_keystead_oidc_source_dir)" && pwd)" || {
    echo "ensure_oidc_provider: crates/testkit/node/oidc-provider is missing" >&2
    return 1
  }
  command -v node >/dev/null || {
    echo "ensure_oidc_provider: node is required (apt-get install -y nodejs npm)" >&2
    return 1
  }
  tools="${KEYSTEAD_TOOLS:-$HOME/.cache/keystead/tools}"
  hash="$(sha256sum "$src/package-lock.json" | cut -c1-16)" || return 1
  dir="$tools/oidc-provider-$hash"

  if [[ ! -f "$dir/node_modules/oidc-provider/package.json" ]]; then
    command -v npm >/dev/null || {
      echo "ensure_oidc_provider: npm is required to install oidc-provider" >&2
      return 1
    }
    echo "ensure_oidc_provider: installing oidc-provider into $dir" >&2
    mkdir -p "$tools" || return 1
    # Install beside, then move into place, so an interrupted install is never reused.
    tmp="$(mktemp -d "$tools/.oidc-provider-XXXXXX")" || return 1
    cp "$src/package.json" "$src/package-lock.json" "$tmp/" || return 1
    if ! (cd "$tmp" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2); then
      echo "ensure_oidc_provider: npm ci of crates/testkit/node/oidc-provider failed" >&2
      rm -rf "$tmp"
      return 1
    fi
    rm -rf "$dir"
    mv "$tmp" "$dir" || return 1
  fi
  cp "$src/server.mjs" "$src/test-signing-key.jwk.json" "$dir/" || return 1
  export KEYSTEAD_OIDC_PROVIDER_DIR="$dir"
}
