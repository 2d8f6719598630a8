#!/bin/sh
# Fails when the shared library exports a symbol without the acp_ prefix, or
# exports none at all. Usage: check_exports.sh NM LIBRARY
set -eu
nm_bin=$1
lib=$2
symbols=$("$nm_bin" -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -v '^$' | sort -u)
count=$(printf '%s\n' "$symbols" | grep -c '^acp_' || true)
stray=$(printf '%s\n' "$symbols" | grep -v '^acp_' | grep -v '^ASYNC_PLATFORM_' || true)
if [ -n "$stray" ]; then
    echo "exported symbols without the acp_ prefix:"
    echo "$stray"
    exit 1
fi
if [ "$count" -lt 10 ]; then
    echo "expected the acp_ API to be exported, found $count symbols"
    exit 1
fi
echo "$count acp_ symbols exported, nothing else"
