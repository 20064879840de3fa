#!/usr/bin/env bash
# Try several GAN settings on the 2-D mixtures at once, one CPU thread per run (many-core machines).
# usage: bash benchmarks/sweep_mixtures.sh OUTDIR SEEDS "name|key=value ..." ["name|..." ...]
set -u
out=$1; seeds=$2; shift 2; mkdir -p "$out"
for recipe in gan_ring8 gan_grid25; do
  for c in "$@"; do
    name=${c%%|*}; ov=${c#*|}
    python benchmarks/mixtures.py $recipe $ov --seeds "$seeds" --jobs "$seeds" > "$out/$recipe-$name.jsonl" 2>&1 &
  done
done
wait
for f in "$out"/*.jsonl; do echo "$(basename "$f"): $(tail -n 1 "$f" | python -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["modes"], d["high_quality"], d["reverse_kl"], d["wall_s"])' 2>/dev/null || tail -c 300 "$f")"; done
