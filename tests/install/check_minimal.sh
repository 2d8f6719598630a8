#!/usr/bin/env bash
# Builds examples/minimal/minimal.c outside the tree against an installed
# staging copy of the library, with pkg-config alone, and runs it against
# the service stack: a job submitted, run, read back and deleted.
# Usage: check_minimal.sh BUILD_DIR   (needs the ACP_TEST_* settings of
# scripts/stack in the environment)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_file="$here/../../examples/minimal/minimal.c"
for var in ACP_TEST_PG_HOST ACP_TEST_AMQP_HOST ACP_TEST_S3_HOST; do
    [ -n "${!var:-}" ] || { echo "$var is not set: run eval \"\$(scripts/stack up)\" first"; exit 1; }
done
# shellcheck source=tests/install/staged.sh
. "$here/staged.sh"
build_outside "$1" "$source_file"
out=$(LD_LIBRARY_PATH="$libdir" "$program") || { echo "$out"; echo "minimal failed"; exit 1; }
echo "$out"
id=$(sed -n 's/^submitted job \([0-9a-f]\{32\}\) .*/\1/p' <<<"$out")
[ -n "$id" ] || { echo "no job id in the output"; exit 1; }
grep -q "^job $id is complete" <<<"$out" || { echo "the job did not complete"; exit 1; }
grep -q "^hello from job $id (attempt 1)" <<<"$out" || { echo "greeting.txt was not read back"; exit 1; }
grep -q "^deleted job $id" <<<"$out" || { echo "the job was not deleted"; exit 1; }
echo "minimal example built against the installed library ran job $id end to end"
