# shellcheck shell=bash
# Installs the anvil EVM node (Foundry) from npm and says where it is.
#
#   source scripts/lib/anvil.sh
#   ensure_anvil            # installs if missing; exports KEYSTEAD_ANVIL
#   "$KEYSTEAD_ANVIL" --host 127.0.0.1 --port 8545
#
# The binary is called directly (never through npx). Tools live outside the clone, in
# ${KEYSTEAD_TOOLS:-$HOME/.cache/keystead/tools}, so a fresh checkout reuses them.

KEYSTEAD_ANVIL_PACKAGE="@foundry-rs/anvil-linux-amd64"
KEYSTEAD_ANVIL_VERSION="1.7.1"

# Prints the path where ensure_anvil puts the binary (it may not exist yet).
anvil_path() {
  local tools="${KEYSTEAD_TOOLS:-$HOME/.cache/keystead/tools}"
  printf '%s\n' "$tools/node_modules/$KEYSTEAD_ANVIL_PACKAGE/bin/anvil"
}

# Installs the pinned anvil if it is missing (or another version is installed), then
# exports KEYSTEAD_ANVIL with the path to its binary. Returns non-zero on failure.
ensure_anvil() {
  local tools bin want installed
  tools="${KEYSTEAD_TOOLS:-$HOME/.cache/keystead/tools}"
  bin="$(anvil_path)"
  want="$KEYSTEAD_ANVIL_VERSION"

  installed=""
  if [[ -x "$bin" ]]; then
    # `anvil --version` prints "anvil Version: 1.7.1" on its first line.
    installed="$("$bin" --version 2>/dev/null | head -n 1 || true)"
  fi
  if ! [[ "$installed" =~ Version:\ ${want//./\\.}([^0-9.]|$) ]]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) ;;
      *)
        echo "ensure_anvil: the pinned anvil package is for Linux x86-64; this is $(uname -s)-$(uname -m)" >&2
        return 1
        ;;
    esac
    command -v npm >/dev/null || {
      echo "ensure_anvil: npm is required to install anvil (apt-get install -y nodejs npm)" >&2
      return 1
    }
    echo "ensure_anvil: installing $KEYSTEAD_ANVIL_PACKAGE@$want into $tools" >&2
    mkdir -p "$tools" || return 1
    npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error \
      "$KEYSTEAD_ANVIL_PACKAGE@$want" >&2 || {
      echo "ensure_anvil: npm install of $KEYSTEAD_ANVIL_PACKAGE@$want failed" >&2
      return 1
    }
    [[ -x "$bin" ]] || chmod +x "$bin" 2>/dev/null || true
    if [[ ! -x "$bin" ]]; then
      echo "ensure_anvil: $bin is missing after the install" >&2
      return 1
    fi
  fi
  export KEYSTEAD_ANVIL="$bin"
}
