# shellcheck shell=bash
# Installs Debian's Chromium for the widget's browser test (playwright-core drives the system
# browser; it never downloads one).
#
#   source scripts/lib/chromium.sh
#   ensure_chromium        # apt-get install -y chromium, only when /usr/bin/chromium is missing
#
# Also installs a Korean font (fonts-nanum, best effort) when none is present, so the
# widget's Korean screens render in the test's screenshots.

ensure_chromium() {
  if [[ -x /usr/bin/chromium ]]; then
    _ensure_korean_font
    return 0
  fi
  command -v apt-get >/dev/null || {
    echo "ensure_chromium: /usr/bin/chromium is missing and apt-get is not available" >&2
    return 1
  }
  local sudo=""
  [[ "$(id -u)" != 0 ]] && sudo="sudo"
  echo "ensure_chromium: installing chromium (apt)" >&2
  { $sudo apt-get install -y chromium >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y chromium >&2; }; } || {
    echo "ensure_chromium: apt-get install chromium failed" >&2
    return 1
  }
  [[ -x /usr/bin/chromium ]] || return 1
  _ensure_korean_font
}

_ensure_korean_font() {
  command -v fc-list >/dev/null && [[ -n "$(fc-list :lang=ko 2>/dev/null | head -n1)" ]] && return 0
  command -v apt-get >/dev/null || return 0
  local sudo=""
  [[ "$(id -u)" != 0 ]] && sudo="sudo"
  echo "ensure_chromium: installing a Korean font (fonts-nanum)" >&2
  $sudo apt-get install -y fonts-nanum >&2 || echo "ensure_chromium: no Korean font; Korean screenshots will show boxes" >&2
  return 0
}
