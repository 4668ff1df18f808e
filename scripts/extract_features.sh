#!/usr/bin/env bash
# Contextual embeddings: per-token vectors of the top 4 layers in the reference JSON-lines format, and
# mean-pooled sentence vectors as a .npy array. Left as is, it fine-tunes a tiny model on the bundled
# sample task first (scripts/finetune_gpu.sh) and extracts features from it on the CPU.
set -euo pipefail

BERT_DIR="${BERT_DIR:-}"                    # released or converted model folder; empty = tiny model
INIT_CHECKPOINT="${INIT_CHECKPOINT:-}"      # any checkpoint of that model (default: BERT_DIR's)
INPUT_FILE="${INPUT_FILE:-sample_data/extract_features_input.txt}"   # one sentence (or "A ||| B") per line
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_features}"
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"
LAYERS="${LAYERS:-}"                        # default: -1,-2,-3,-4 (the top two for the 2-layer tiny model)
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-128}"
BATCH_SIZE="${BATCH_SIZE:-32}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi
mkdir -p "${OUTPUT_DIR}"
if [ -n "${BERT_DIR}" ]; then
  CONFIG="${BERT_DIR}/bert_config.json"; VOCAB="${BERT_DIR}/vocab.txt"; LAYERS="${LAYERS:--1,-2,-3,-4}"
  INIT_CHECKPOINT="${INIT_CHECKPOINT:-${BERT_DIR}/bert_model.ckpt}"
else
  CONFIG="${TINY_CONFIG}"; VOCAB="${TINY_VOCAB}"; LAYERS="${LAYERS:--1,-2}"
  if [ -z "${INIT_CHECKPOINT}" ]; then
    OUTPUT_DIR="${OUTPUT_DIR}/tiny_model" NUM_TRAIN_EPOCHS=0.5 MAX_STEPS_WITHOUT_DECREASE=0 \
      bash "$(dirname "$0")/finetune_gpu.sh"
    INIT_CHECKPOINT="$("${PYTHON}" -c 'import sys, tensorflow as tf; print(tf.train.latest_checkpoint(sys.argv[1]))' "${OUTPUT_DIR}/tiny_model")"
  fi
fi

"${PYTHON}" extract_features.py --input_file="${INPUT_FILE}" --output_file="${OUTPUT_DIR}/features.jsonl" \
  --bert_config_file="${CONFIG}" --vocab_file="${VOCAB}" --init_checkpoint="${INIT_CHECKPOINT}" \
  --do_lower_case="${DO_LOWER_CASE}" --layers="${LAYERS}" --max_seq_length="${MAX_SEQ_LENGTH}" \
  --batch_size="${BATCH_SIZE}"
"${PYTHON}" extract_features.py --input_file="${INPUT_FILE}" --output_file="${OUTPUT_DIR}/sentences.npy" \
  --bert_config_file="${CONFIG}" --vocab_file="${VOCAB}" --init_checkpoint="${INIT_CHECKPOINT}" \
  --do_lower_case="${DO_LOWER_CASE}" --max_seq_length="${MAX_SEQ_LENGTH}" --batch_size="${BATCH_SIZE}" \
  --pooling_strategy=mean --pooling_layer=-1 --output_format=npy
echo "Token features in ${OUTPUT_DIR}/features.jsonl, sentence vectors in ${OUTPUT_DIR}/sentences.npy"
