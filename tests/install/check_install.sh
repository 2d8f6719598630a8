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
echo "installed library, header and pkg-config file work from outside the tree (soname $soname)"
