#!/usr/bin/env bash
# Builds the fake Virtualization framework (libVirtualization.so) into OUTDIR.
#
#   tests/fakes/Virtualization/build.sh OUTDIR           build (cached: only when a source changed)
#   tests/fakes/Virtualization/build.sh OUTDIR --test    build, build the smoke test, run it
#
# Installs nothing. When a tool or library is missing it says which and prints the apt-get line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: $0 OUTDIR [--test]" >&2
    exit 2
fi
out="$1"
shift
run_test=0
for arg in "$@"; do
    case "$arg" in
        --test) run_test=1 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

# ---- tools and libraries -------------------------------------------------------------------
packages="clang libobjc-12-dev libblocksruntime-dev libgnustep-base-dev"
missing=()
clang_bin="$(command -v clang || true)"
[[ -n "$clang_bin" ]] || missing+=("clang (package clang)")

gcc_dir=""
for d in /usr/lib/gcc/*-linux-gnu/12; do
    if [[ -f "$d/include/objc/runtime.h" && -e "$d/libobjc.so" ]]; then gcc_dir="$d"; fi
done
[[ -n "$gcc_dir" ]] || missing+=("GCC's Objective-C runtime headers and libobjc.so (package libobjc-12-dev)")
[[ -f /usr/include/Block.h ]] || missing+=("Block.h / libBlocksRuntime (package libblocksruntime-dev)")
ls /usr/lib/*/libBlocksRuntime.so >/dev/null 2>&1 || [[ -f /usr/lib/libBlocksRuntime.so ]] ||
    missing+=("libBlocksRuntime.so (package libblocksruntime-dev)")
[[ -f /usr/include/GNUstep/Foundation/Foundation.h ]] || missing+=("GNUstep Foundation headers (package libgnustep-base-dev)")
[[ -e /usr/lib/libgnustep-base.so ]] || ls /usr/lib/*/libgnustep-base.so >/dev/null 2>&1 ||
    missing+=("libgnustep-base.so (package libgnustep-base-dev)")

if (( ${#missing[@]} )); then
    echo "build.sh: cannot build the fake Virtualization framework; missing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    echo "install them with:" >&2
    echo "  apt-get update && apt-get install -y $packages" >&2
    exit 1
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"

# ---- flags ---------------------------------------------------------------------------------
# The GNUstep headers include <objc/blocks_runtime.h> (a libobjc2 header) when blocks are on;
# shim/ maps it to libBlocksRuntime's <Block.h>. GCC's objc/*.h come after clang's own headers.
common=(-fobjc-runtime=gcc -fblocks -fobjc-exceptions -fexceptions -fPIC -O1 -g -Wall -Wextra -Wno-unused-parameter
        -I"$here/shim" -idirafter "$gcc_dir/include")
gnustep=(-I/usr/include/GNUstep -DGNUSTEP -DGNUSTEP_BASE_LIBRARY=1 -DGNU_RUNTIME=1 -D_NATIVE_OBJC_EXCEPTIONS
         -fconstant-string-class=NSConstantString)
# libBlocksRuntime comes before libgnustep-base on purpose: GNUstep exports its own _Block_copy
# and _NSConcreteStackBlock; listed first, libBlocksRuntime's are the ones the fake binds to.
# shellcheck disable=SC2054  # commas inside -Wl, flags are intended
lib_link=(-shared -Wl,--no-as-needed -L"$gcc_dir" -lBlocksRuntime -lgnustep-base -lobjc -lpthread -Wl,-z,defs)
smoke_link=(-L"$gcc_dir" -lobjc -ldl -lpthread)

stamp() { # hash of the inputs of a target
    { "$clang_bin" --version; echo "$gcc_dir"; printf '%s\n' "$@"; cat "$here/build.sh"; } | sha256sum | cut -d' ' -f1
}
up_to_date() { # target stampfile hash
    [[ -f "$1" && -f "$2" && "$(cat "$2")" == "$3" ]]
}

lib="$out/libVirtualization.so"
lib_hash="$(stamp "${common[@]}" "${gnustep[@]}" "${lib_link[@]}" "$(cat "$here/Virtualization.m" "$here/VZFake.h" "$here/shim/objc/blocks_runtime.h")")"
if up_to_date "$lib" "$out/.libVirtualization.stamp" "$lib_hash"; then
    echo "build.sh: $lib is up to date"
else
    echo "build.sh: building $lib"
    "$clang_bin" "${common[@]}" "${gnustep[@]}" "$here/Virtualization.m" -o "$lib.tmp" "${lib_link[@]}"
    mv -f "$lib.tmp" "$lib"
    echo "$lib_hash" > "$out/.libVirtualization.stamp"
fi

(( run_test )) || exit 0

smoke="$out/vzfake-smoke"
smoke_hash="$(stamp "${common[@]}" "${smoke_link[@]}" "$(cat "$here/smoke.m" "$here/VZFake.h")")"
if up_to_date "$smoke" "$out/.vzfake-smoke.stamp" "$smoke_hash"; then
    echo "build.sh: $smoke is up to date"
else
    echo "build.sh: building $smoke"
    "$clang_bin" "${common[@]}" "$here/smoke.m" -o "$smoke.tmp" "${smoke_link[@]}"
    mv -f "$smoke.tmp" "$smoke"
    echo "$smoke_hash" > "$out/.vzfake-smoke.stamp"
fi

echo "build.sh: running $smoke $lib"
"$smoke" "$lib"
