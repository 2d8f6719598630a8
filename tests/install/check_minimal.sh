#!/usr/bin/env bash
# Builds examples/minimal/minimal.c outside the tree against an installed
# staging copy of the library, with pkg-config alone, and runs it against
# the service stack: a job submitted, run, read back and deleted.
# Usage: check_minimal.sh BUILD_DIR   (needs the ACP_TEST_* settings of
# scripts/stack in the environment)
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
source_file="$here/../../examples/minimal/minimal.c"
for var in ACP_TEST_PG_HOST ACP_TEST_AMQP_HOST ACP_TEST_S3_HOST; do
    [ -n "${!var:-}" ] || { echo "$var is not set: run eval \"\$(scripts/stack up)\" first"; exit 1; }
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

meson install -C "$build" --destdir "$stage" --quiet
pcfile=$(find "$stage" -name async-platform.pc | head -n 1)
[ -n "$pcfile" ] || { echo "async-platform.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pcfile")
export PKG_CONFIG_SYSROOT_DIR=$stage

work=$(mktemp -d -p "$stage")
cp "$source_file" "$work/minimal.c"
cd "$work"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror minimal.c -o minimal $(pkg-config --cflags --libs async-platform)
libdir=$(dirname "$(dirname "$pcfile")")
out=$(LD_LIBRARY_PATH="$libdir" ./minimal) || { echo "$out"; echo "minimal failed"; exit 1; }
echo "$out"
id=$(sed -n 's/^submitted job \([0-9a-f]\{32\}\) .*/\1/p' <<<"$out")
[ -n "$id" ] || { echo "no job id in the output"; exit 1; }
grep -q "^job $id is complete" <<<"$out" || { echo "the job did not complete"; exit 1; }
grep -q "^hello from job $id (attempt 1)" <<<"$out" || { echo "greeting.txt was not read back"; exit 1; }
grep -q "^deleted job $id" <<<"$out" || { echo "the job was not deleted"; exit 1; }
echo "minimal example built against the installed library ran job $id end to end"
