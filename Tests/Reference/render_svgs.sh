#!/usr/bin/env bash
# Renders SVG figures (e.g. `nekochat routing --svg DIR`) to PNG beside them, to look at them.
#
#   Tests/Reference/render_svgs.sh FILE.svg|DIR ...          # DIR: every *.svg below it
#   NEKOROUTING_SVG_DIR=/tmp/svgs swift test --filter NekoRoutingTests.SVGTests   # writes sample figures
#   Tests/Reference/render_svgs.sh /tmp/svgs
#
# Uses a headless browser when there is one (chromium, else firefox-esr) — that is what a user
# opens them with — and rsvg-convert (librsvg2-bin) otherwise or with RENDERER=rsvg.
# Install one with: apt-get install -y chromium   (or librsvg2-bin)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE.svg|DIR ..." >&2; exit 2; }

renderer=${RENDERER:-}
if [ -z "$renderer" ]; then
  if command -v chromium >/dev/null; then renderer=chromium
  elif command -v firefox-esr >/dev/null; then renderer=firefox
  elif command -v rsvg-convert >/dev/null; then renderer=rsvg
  else echo "error: no renderer: apt-get install -y chromium (or librsvg2-bin)" >&2; exit 1
  fi
fi

# The SVG's own size, from the width/height attributes of its root element.
size() { sed -n 's/.*<svg[^>]* width="\([0-9.]*\)" height="\([0-9.]*\)".*/\1 \2/p' "$1" | head -n 1; }

render() {
  local svg=$1 png=${1%.svg}.png w h
  read -r w h < <(size "$svg") || { w=1200; h=900; }
  w=${w%.*}; h=${h%.*}
  case $renderer in
    chromium)
      chromium --headless --disable-gpu --no-sandbox --hide-scrollbars --screenshot="$png" \
        --window-size="$((w + 16)),$((h + 16))" "file://$(realpath "$svg")" >/dev/null 2>&1 ;;
    firefox)
      firefox-esr --headless --screenshot "$png" --window-size="$((w + 16)),$((h + 16))" \
        "file://$(realpath "$svg")" >/dev/null 2>&1 ;;
    rsvg) rsvg-convert --background-color=white -o "$png" "$svg" ;;
    *) echo "error: unknown RENDERER $renderer" >&2; exit 2 ;;
  esac
  echo "$png"
}

for arg in "$@"; do
  if [ -d "$arg" ]; then
    find "$arg" -name '*.svg' | sort | while read -r f; do render "$f"; done
  else
    render "$arg"
  fi
done
