#!/usr/bin/env bash
# Continued pretraining (the SciBERT recipe) on one GPU: raw text -> TFRecords -> MLM+NSP training from a
# released checkpoint, with held-out evaluation and early stopping. Left as is, it runs on the CPU on
# the bundled sample corpus with a tiny model trained from scratch.
set -euo pipefail

BERT_DIR="${BERT_DIR:-}"                    # released model folder, e.g. ~/models/uncased_L-12_H-768_A-12
CORPUS="${CORPUS:-sample_data/pretraining/sample_text_en.txt}"   # one sentence per line, blank line between docs
EVAL_CORPUS="${EVAL_CORPUS:-sample_data/pretraining/sample_text_zh.txt}"  # held-out text
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_pretrain_gpu}"
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"      # False for cased models
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"   # e.g. 0; empty = let TensorFlow choose (CPU if none)
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-128}"
MAX_PREDICTIONS="${MAX_PREDICTIONS:-20}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-32}"
NUM_ACCUMULATION_STEPS="${NUM_ACCUMULATION_STEPS:-1}"   # raise to fit a large batch on a small GPU
NUM_TRAIN_STEPS="${NUM_TRAIN_STEPS:-20}"    # e.g. 100000 for a real corpus
NUM_WARMUP_STEPS="${NUM_WARMUP_STEPS:-2}"   # e.g. 10000
LEARNING_RATE="${LEARNING_RATE:-2e-5}"      # the README's advice for continued pretraining
USE_AMP="${USE_AMP:-False}"                 # True on Volta or newer GPUs
USE_XLA="${USE_XLA:-False}"
SAVE_CHECKPOINTS_STEPS="${SAVE_CHECKPOINTS_STEPS:-10}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi
VOCAB="$(vocab_file "${BERT_DIR}")"
mkdir -p "${OUTPUT_DIR}"

"${PYTHON}" create_pretraining_data.py --input_file="${CORPUS}" --output_file="${OUTPUT_DIR}/train.tfrecord" \
  --vocab_file="${VOCAB}" --do_lower_case="${DO_LOWER_CASE}" --max_seq_length="${MAX_SEQ_LENGTH}" \
  --max_predictions_per_seq="${MAX_PREDICTIONS}" --dupe_factor=5 --num_workers=2
"${PYTHON}" create_pretraining_data.py --input_file="${EVAL_CORPUS}" --output_file="${OUTPUT_DIR}/eval.tfrecord" \
  --vocab_file="${VOCAB}" --do_lower_case="${DO_LOWER_CASE}" --max_seq_length="${MAX_SEQ_LENGTH}" \
  --max_predictions_per_seq="${MAX_PREDICTIONS}" --dupe_factor=1

# shellcheck disable=SC2046
"${PYTHON}" run_pretraining.py $(model_flags "${BERT_DIR}") \
  --input_file="${OUTPUT_DIR}/train.tfrecord*" --eval_input_file="${OUTPUT_DIR}/eval.tfrecord" \
  --output_dir="${OUTPUT_DIR}/model" --do_train=True --do_eval=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --max_predictions_per_seq="${MAX_PREDICTIONS}" \
  --train_batch_size="${TRAIN_BATCH_SIZE}" --num_accumulation_steps="${NUM_ACCUMULATION_STEPS}" \
  --num_train_steps="${NUM_TRAIN_STEPS}" --num_warmup_steps="${NUM_WARMUP_STEPS}" \
  --learning_rate="${LEARNING_RATE}" --save_checkpoints_steps="${SAVE_CHECKPOINTS_STEPS}" \
  --max_eval_steps=5 --use_amp="${USE_AMP}" --use_xla="${USE_XLA}"
echo "Pretrained checkpoint and eval_results.txt in ${OUTPUT_DIR}/model"
