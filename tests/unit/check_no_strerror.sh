#!/bin/sh
# Point 9 of issue 10: strerror() shares one buffer between threads, and the
# library has threads. Fail when a C file under SRC_DIR calls it; the
# thread-safe error_strerror() (src/error.c) is the replacement.
# Usage: check_no_strerror.sh SRC_DIR
set -eu
src=${1:?usage: check_no_strerror.sh SRC_DIR}
ls "$src"/*.c >/dev/null || exit 1
# A call: "strerror" not preceded by a name character, then "(".
if grep -nE '(^|[^A-Za-z0-9_])strerror[[:space:]]*\(' "$src"/*.c "$src"/*.h; then
    echo "strerror() is not thread-safe: use error_strerror() from error.h" >&2
    exit 1
fi
