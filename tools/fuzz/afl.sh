#!/usr/bin/env bash
# A coverage-guided campaign on one reader: SharpFuzz instruments MobileOne.dll, AFL++ drives the harness
# (tools/fuzz/MobileOne.Fuzz) in persistent mode. docs/reliability.md, "Coverage-guided campaigns", has the campaigns.
#
#   tools/fuzz/afl.sh TARGET [EXECUTIONS] [OUT]
#
# TARGET: safetensors, torch-zip, pickle (data.pkl inside a valid torch.save zip) or onnx. EXECUTIONS: afl-fuzz
# stops after about this many (default 1000000). OUT (default /tmp/mobileone-afl/TARGET) receives the instrumented
# build, the seeds and afl-fuzz's findings/ (queue/, crashes/, hangs/, fuzzer_stats). Needs Debian's afl++ and the
# sharpfuzz tool (dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path DIR; SHARPFUZZ=DIR/sharpfuzz
# if it is not on PATH). A crash or hang is replayed with: dotnet OUT/bin/MobileOne.Fuzz.dll replay TARGET FILE...
set -euo pipefail

target=${1:?usage: tools/fuzz/afl.sh TARGET [EXECUTIONS] [OUT]}
executions=${2:-1000000}
out=${3:-/tmp/mobileone-afl/$target}
root=$(cd "$(dirname "$0")/../.." && pwd)
sharpfuzz=${SHARPFUZZ:-sharpfuzz}

command -v afl-fuzz >/dev/null || { echo "error: afl-fuzz not found (apt-get install afl++)" >&2; exit 1; }
command -v "$sharpfuzz" >/dev/null || { echo "error: sharpfuzz not found (set SHARPFUZZ)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
dotnet publish "$root/tools/fuzz/MobileOne.Fuzz" -c Release -o "$out/bin" >"$out/publish.log"
# Only the library is instrumented: its readers are what the campaign explores (the harness, SharpFuzz and the
# framework are not). Instrumented code runs only under afl-fuzz, so the seeds (and replays) use the plain build.
cp -r "$out/bin" "$out/bin-afl"
"$sharpfuzz" "$out/bin-afl/MobileOne.dll"
dotnet "$out/bin/MobileOne.Fuzz.dll" seeds "$target" "$out/seeds"

# Tokens of the format (tools/fuzz/*.dict) let mutations write whole keys, dtype names and pickle globals.
dictionary=()
case "$target" in
    safetensors) dictionary=(-x "$root/tools/fuzz/safetensors.dict") ;;
    torch-zip|pickle) dictionary=(-x "$root/tools/fuzz/pickle.dict") ;;
esac

# The harness is started through dotnet, which carries no AFL signature (SKIP_BIN_CHECK); SharpFuzz speaks the
# forkserver protocol from inside the managed loop. -t: a load taking 2 s is a hang (the readers' budget).
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    afl-fuzz -i "$out/seeds" -o "$out/findings" -t 2000 -m none -E "$executions" "${dictionary[@]}" \
    -- dotnet "$out/bin-afl/MobileOne.Fuzz.dll" run "$target"

stats="$out/findings/default/fuzzer_stats"
grep -E '^(start_time|last_update|run_time|execs_done|execs_per_sec|corpus_count|bitmap_cvg|edges_found|total_edges|saved_crashes|saved_hangs)\b' "$stats"
