#!/usr/bin/env bash
# Do two checkouts give the same results? Runs every shipped recipe that trains offline here (the
# MNIST ones on the IDX test files) and the three examples, briefly, from each tree, and compares
# the md5 of every summary.json / bler.csv / psnr.csv.
#
#   git worktree add /tmp/before <rev>
#   benchmarks/same_results.sh /tmp/before . [/tmp/same-results]
#
# One thread per run (exact CPU summation order); MULTINET_MNIST_RAW names the MNIST IDX folder
# (default ../shared/data/MNIST/raw). Not run: gan_transfer (needs a checkpoint to start from) and
# sngan_cifar10 (CIFAR-10 is not on this machine).
set -uo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); WORK=${3:-$(mktemp -d)}
MN=${MULTINET_MNIST_RAW:-$(realpath "$NEW/../shared/data/MNIST/raw")}
runs() {  # TREE OUT
  local tree=$1 out=$2; rm -rf "$out"; mkdir -p "$out"
  run() { local name=$1; shift
    (cd "$tree" && OMP_NUM_THREADS=1 PYTHONPATH="$tree" timeout 900 python -m multinet train "$@" --out "$out/$name" \
      device=cpu >"$out/$name.log" 2>&1); echo "$name rc=$?" >>"$out/rc.txt"; }
  for r in gan_digits gan_ring8 gan_grid25; do
    run $r gan "$tree/recipes/$r.toml" --steps 60 train.eval_every=30 eval.samples=500 eval.drs_refit=0; done
  for r in gan_mnist_mlp dcgan_mnist dcgan_mnist_cond; do
    run $r gan "$tree/recipes/$r.toml" --steps 6 train.eval_every=3 data.name=idx data.root="$MN" data.limit=512 \
      eval.samples=200 eval.classifier_epochs=1 eval.standard_metrics=false; done
  for r in ae_2_2 ae_7_4 ae_7_4_model_free ae_7_4_quantized ae_7_4_rx_finetune ae_8_8 ae_bits_ldpc; do
    run $r autoencoder "$tree/recipes/$r.toml" --steps 40 eval.max_blocks=20000 eval.batch=10000; done
  run ae_images_awgn autoencoder "$tree/recipes/ae_images_awgn.toml" --steps 20
  run ex_clip examples.ae_clipping_channel:ClippedAutoencoder --steps 300
  run ex_bigan examples.bigan_digits:BiGan --steps 60
  run ex_cond examples.cond_gan_digits:CondGan --steps 60
  (cd "$out" && find . -name summary.json -o -name bler.csv -o -name psnr.csv | sort | xargs md5sum >hashes.txt)
}
# REUSE_OLD=1 keeps the results of an earlier call's OLD tree in the same WORK folder.
if [ -z "${REUSE_OLD:-}" ] || [ ! -f "$WORK/old/hashes.txt" ]; then runs "$OLD" "$WORK/old"; fi
runs "$NEW" "$WORK/new"
grep -hv "rc=0" "$WORK/old/rc.txt" "$WORK/new/rc.txt" && echo "some runs failed (see the logs in $WORK)"
if diff "$WORK/old/hashes.txt" "$WORK/new/hashes.txt"; then
  echo "same: $(wc -l <"$WORK/new/hashes.txt") result files of $(wc -l <"$WORK/new/rc.txt") runs"
else
  echo "DIFFERENT (above)"; exit 1
fi
