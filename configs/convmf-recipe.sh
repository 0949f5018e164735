#!/usr/bin/env bash
# The ConvMF recipe table of docs/results/convmf-recipe.md (ranks 4-12, seeds 0-2 at 8, 10, 12;
# 240 epochs, lr 1e-3, warmup 5, cosine, clip 50, factors+projection: the defaults of
# `neuralfactor train`). The script simulates its data (64x128 Landau damping) under --root.
# One command from the repository root: bash configs/convmf-recipe.sh
cd "$(dirname "$0")/.."
. configs/_stage.sh
stage convmf-recipe python benchmarks/convmf_recipe.py --ranks 4,6,8,10,12 --seeds 0,1,2 \
  --seed-ranks 8,10,12 --epochs 240 --lr 0.001 --clip-norm 50 --warmup-epochs 5 \
  --objective factors+projection --root runs/recipe --lanes 2
