#!/bin/sh
# Re-runs the PyTorch / Keras baseline runs summarised in results/baselines.md, one job at a
# time (each writes its log to results/runs/, which git ignores).
# Usage: sh benchmarks/run_baselines.sh  (from the repository root; about 25 min on 2 cores)
set -e
B="nice -n 10 python benchmarks/bench_torch_baseline.py"
K="nice -n 10 python benchmarks/bench_keras_baseline.py"
for m in gmf mlp neumf; do
  $B --dataset ml-100k --model $m --epochs 20 --threads 1 --seed 0
done
# Best setting of the MF sweep in results/baselines.md (64 factors, 4 negatives, Adam 1e-3,
# row-wise L2 3e-3).
$B --dataset ml-100k --model mf --factors 64 --lr 0.001 --l2 3e-3 --epochs 20 --threads 1 --seed 0 --full-eval
# Threads: 1 vs 2 side by side; libgomp's default spin-waiting vs OMP_WAIT_POLICY=PASSIVE.
$B --dataset ml-100k --model neumf --epochs 5 --threads 1 --seed 0
$B --dataset ml-100k --model neumf --epochs 5 --threads 2 --seed 0
OMP_WAIT_POLICY=PASSIVE $B --dataset ml-100k --model neumf --epochs 5 --threads 2 --seed 0 --tag omp_passive
# Large catalog: dense Adam vs SparseAdam, one epoch each.
$B --dataset sports --model neumf --epochs 1 --threads 1 --seed 0
$B --dataset sports --model neumf --epochs 1 --threads 1 --seed 0 --optimizer sparse_adam --tag sparse_adam
$B --dataset ml-1m --model neumf --epochs 1 --threads 1 --seed 0
# Keras 3 (torch backend), 5 epochs for speed and an early quality check.
for m in gmf mlp neumf; do
  KERAS_BACKEND=torch $K --dataset ml-100k --model $m --epochs 5 --threads 1 --seed 0
done
