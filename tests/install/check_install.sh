#!/usr/bin/env bash
# Installs a build into a staging directory and builds a program outside the
# tree against it with pkg-config alone; then checks the shared library's
# soname and exported symbols. Usage: check_install.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/install/staged.sh
. "$here/staged.sh"
build_outside "$1" "$here/consumer.c"
out=$(LD_LIBRARY_PATH="$libdir" "$program")
[ "$out" = a3363f4b132d281261f0a9dc278f2cf6 ] || { echo "unexpected output: $out"; exit 1; }

lib=$(find "$stage" -name 'libasync-platform.so.*.*' | head -n 1)
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = libasync-platform.so.1 ] || { echo "unexpected soname: $soname"; exit 1; }
stray=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -v -e '^acp_' -e '^ASYNC_PLATFORM_' || true)
[ -z "$stray" ] || { echo "exported without acp_ prefix: $stray"; exit 1; }
test -f "$(find "$stage" -name async_platform.h | head -n 1)" || { echo "header not installed"; exit 1; }

# The acp client, its man page (rendered where asciidoctor is found, which
# scripts/test installs) and its bash completion.
acp=$(find "$stage" -path '*/bin/acp' -type f | head -n 1)
[ -n "$acp" ] && [ -x "$acp" ] || { echo "bin/acp not installed"; exit 1; }
"$acp" --version | grep -q '^acp ' || { echo "installed acp --version: $("$acp" --version 2>&1)"; exit 1; }
if command -v asciidoctor >/dev/null; then
    test -f "$(find "$stage" -path '*/man1/acp.1' | head -n 1)" || { echo "man1/acp.1 not installed"; exit 1; }
fi
test -f "$(find "$stage" -path '*/bash-completion/completions/acp' | head -n 1)" ||
    { echo "the bash completion of acp is not installed"; exit 1; }
echo "installed library, header and pkg-config file work from outside the tree (soname $soname); acp, its man page and completion are installed"
