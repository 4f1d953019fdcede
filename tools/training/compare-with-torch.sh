#!/bin/bash
# Training steps of the train-time MobileOne-S0 (k = 4, 10 classes): ours against PyTorch 1.13 (Debian's python3-torch),
# interleaved so both see the same machine. Usage: tools/training/compare-with-torch.sh [ROUNDS] [CLI...]
# CLI defaults to the Release build; give e.g. "dotnet /path/MobileOne.Cli.dll" or a published mobileone binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-2}; shift || true
cli=("$@"); [ ${#cli[@]} -eq 0 ] && cli=(dotnet "$here/../../src/MobileOne.Cli/bin/Release/net10.0/MobileOne.Cli.dll")
for r in $(seq 1 "$rounds"); do
  for cfg in "64 32 20 5" "16 224 6 2"; do
    set -- $cfg; batch=$1 size=$2 steps=$3 warm=$4
    for t in 1 2; do
      ours=$("${cli[@]}" bench-train --model s0 --batch-size "$batch" --size "$size" --in-chans 3 --num-classes 10 --threads "$t" --steps "$steps" --warmup "$warm" --json 2>/dev/null | sed -n 's/.*"images_per_second": \([0-9.]*\).*/\1/p')
      torch=$(/usr/bin/python3 "$here/bench_torch.py" "$batch" "$size" "$t" "$steps" | sed -n 's/.*-> \([0-9.]*\) img\/s/\1/p')
      ratio=$(awk -v a="$ours" -v b="$torch" 'BEGIN { printf "%.2f", a / b }')
      echo "round $r batch $batch size $size threads $t: ours $ours img/s, pytorch $torch img/s, ratio $ratio (load $(cut -d' ' -f1 /proc/loadavg))"
    done
  done
done
