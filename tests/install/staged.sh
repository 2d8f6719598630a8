# Sourced by the check_*.sh scripts: installs the build directory $1 into a
# temporary staging root (removed on exit) and builds the C file $2 there as
# an outside program would, with pkg-config alone. Sets: stage, pcfile,
# libdir (for LD_LIBRARY_PATH) and program (the built executable).
build_outside() { # BUILD_DIR SOURCE
    local build source work
    build=$(cd "$1" && pwd)
    source=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    meson install -C "$build" --destdir "$stage" --quiet
    pcfile=$(find "$stage" -name async-platform.pc | head -n 1)
    [ -n "$pcfile" ] || { echo "async-platform.pc was not installed"; exit 1; }
    export PKG_CONFIG_PATH=$(dirname "$pcfile")
    export PKG_CONFIG_SYSROOT_DIR=$stage
    libdir=$(dirname "$(dirname "$pcfile")")
    work=$(mktemp -d -p "$stage")
    cp "$source" "$work/program.c"
    # shellcheck disable=SC2046
    (cd "$work" && cc -std=c11 -Wall -Wextra -Werror program.c -o program \
        $(pkg-config --cflags --libs async-platform))
    program=$work/program
}
