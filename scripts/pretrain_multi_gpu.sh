#!/usr/bin/env bash
# Continued pretraining on several GPUs of one machine (MirroredStrategy: one replica per GPU, the global
# batch split between them), with AMP and LAMB as large-batch runs use. Left as is, it runs on the CPU on
# the bundled sample corpus with a tiny model.
set -euo pipefail

BERT_DIR="${BERT_DIR:-}"                    # released model folder; empty = tiny demo model from scratch
CORPUS="${CORPUS:-sample_data/pretraining/sample_text_en.txt}"
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_pretrain_multi_gpu}"
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
NUM_GPUS="${NUM_GPUS:-}"                    # e.g. 4; empty = CPU
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"   # e.g. 0,1,2,3
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-128}"
MAX_PREDICTIONS="${MAX_PREDICTIONS:-20}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-32}"  # global batch, divided between the GPUs
NUM_TRAIN_STEPS="${NUM_TRAIN_STEPS:-20}"
NUM_WARMUP_STEPS="${NUM_WARMUP_STEPS:-2}"
LEARNING_RATE="${LEARNING_RATE:-2e-5}"
OPTIMIZER="${OPTIMIZER:-lamb}"              # lamb or adamw (the reference optimizer)
USE_AMP="${USE_AMP:-False}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi
VOCAB="$(vocab_file "${BERT_DIR}")"
STRATEGY_FLAGS="--distribution_strategy=none"
if [ -n "${NUM_GPUS}" ]; then STRATEGY_FLAGS="--num_gpus=${NUM_GPUS} --distribution_strategy=mirrored"; fi
mkdir -p "${OUTPUT_DIR}"

"${PYTHON}" create_pretraining_data.py --input_file="${CORPUS}" --output_file="${OUTPUT_DIR}/train.tfrecord" \
  --vocab_file="${VOCAB}" --do_lower_case="${DO_LOWER_CASE}" --max_seq_length="${MAX_SEQ_LENGTH}" \
  --max_predictions_per_seq="${MAX_PREDICTIONS}" --dupe_factor=5 --num_workers=2

# shellcheck disable=SC2046,SC2086
"${PYTHON}" run_pretraining.py $(model_flags "${BERT_DIR}") ${STRATEGY_FLAGS} \
  --input_file="${OUTPUT_DIR}/train.tfrecord*" --output_dir="${OUTPUT_DIR}/model" --do_train=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --max_predictions_per_seq="${MAX_PREDICTIONS}" \
  --train_batch_size="${TRAIN_BATCH_SIZE}" --num_train_steps="${NUM_TRAIN_STEPS}" \
  --num_warmup_steps="${NUM_WARMUP_STEPS}" --learning_rate="${LEARNING_RATE}" \
  --optimizer="${OPTIMIZER}" --use_amp="${USE_AMP}"
echo "Pretrained checkpoint in ${OUTPUT_DIR}/model"
