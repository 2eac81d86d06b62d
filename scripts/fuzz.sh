#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ and runs each for a while.
#
#   scripts/fuzz.sh [seconds per target] [target…]      targets: formula json sse (default: all)
#
# The targets are compiled straight from the package's sources with `swiftc -sanitize=fuzzer,address`
# (not by `swift build`): PyAirtableModels as a module, the formula SQL compiler and the SSE parser
# compiled into their targets. GRDB comes from the package's own debug build. Crashes and the inputs
# that cause them land in .build/fuzz/<target>/; corpora persist there between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(formula json sse)

out=.build/fuzz
mkdir -p "$out"
flags=(-parse-as-library -package-name pyat -O -g -sanitize=fuzzer,address -swift-version 6 -use-ld=lld)

echo "fuzz: building GRDB (package debug build)"
swift build --target GRDB >/dev/null
grdb_objects=(.build/debug/GRDB.build/*.o)
grdb_module=.build/debug/Modules
sqlite_map=.build/checkouts/GRDB.swift/Sources/GRDBSQLite

echo "fuzz: building PyAirtableModels"
swiftc "${flags[@]}" -module-name PyAirtableModels -emit-module -emit-module-path "$out/PyAirtableModels.swiftmodule" \
    -wmo -c -o "$out/PyAirtableModels.o" $(find Sources/PyAirtableModels -name '*.swift')

build() {
    local name="$1"
    shift
    swiftc "${flags[@]}" -module-name "${name}Fuzz" -I "$out" "$@" -o "$out/$name-fuzz"
}

for target in "${targets[@]}"; do
    case "$target" in
    formula)
        build formula Fuzz/FormulaFuzz.swift Sources/ReferenceServer/Records/FormulaSQL.swift "$out/PyAirtableModels.o" \
            -I "$grdb_module" -Xcc -fmodule-map-file="$sqlite_map/module.modulemap" "${grdb_objects[@]}" -lsqlite3
        ;;
    json)
        build json Fuzz/JSONFuzz.swift "$out/PyAirtableModels.o"
        ;;
    sse)
        build sse Fuzz/SSEFuzz.swift Sources/PyAirtableClient/Realtime/ServerSentEventParser.swift
        ;;
    *)
        echo "unknown target $target" >&2
        exit 2
        ;;
    esac
done

for target in "${targets[@]}"; do
    corpus="$out/$target/corpus"
    mkdir -p "$corpus" "$out/$target/artifacts"
    if [ -d "Fuzz/seeds/$target" ]; then cp -n Fuzz/seeds/$target/* "$corpus/" 2>/dev/null || true; fi
    echo "fuzz: $target for ${seconds}s"
    "$out/$target-fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/$target/artifacts/" -print_final_stats=1 "$corpus" 2>&1 | tail -n 25
done
