#!/usr/bin/env bash
# Bit-exact resume check on any device: an uninterrupted run vs. stop at step N + --resume.
# usage: bash benchmarks/resume_check.sh DEVICE   (e.g. cuda; add train.deterministic=true there)
set -eu
dev=${1:-cpu}; shift || true; tmp=$(mktemp -d)
G="gan_digits --device $dev train.log_every=5 train.sample_every=10 train.checkpoint_every=10 eval.samples=200 eval.classifier_epochs=1 train.tensorboard=false --no-progress --steps 20 $*"
A="ae_7_4 --device $dev train.log_every=5 train.checkpoint_every=10 eval.max_blocks=20000 eval.batch=10000 eval.ml_errors=10 train.tensorboard=false --no-progress --steps 30 $*"
python -m multinet.gan $G --out $tmp/g1 > /dev/null; python -m multinet.gan $G --stop-at 10 --out $tmp/g2 2> /dev/null; python -m multinet.gan --resume $tmp/g2/checkpoints/last.pt --no-progress > /dev/null
python -m multinet.autoencoder $A --out $tmp/a1 > /dev/null; python -m multinet.autoencoder $A --stop-at 25 --out $tmp/a2 2> /dev/null; python -m multinet.autoencoder --resume $tmp/a2/checkpoints/last.pt --no-progress > /dev/null
python - "$tmp" <<'PY'
import sys, torch
from multinet import load_checkpoint
for a, b in [("g1", "g2"), ("a1", "a2")]:
    x, y = (load_checkpoint(f"{sys.argv[1]}/{r}/checkpoints/last.pt")["networks"] for r in (a, b))
    same = all(torch.equal(x[n]["module"][k], y[n]["module"][k]) for n in x for k in x[n]["module"])
    print(f"{a} vs {b}+resume: {'bit-exact' if same else 'DIFFERENT'}")
PY
