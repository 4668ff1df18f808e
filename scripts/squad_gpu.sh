#!/usr/bin/env bash
# Fine-tune for SQuAD 1.1 or 2.0 question answering on one GPU, picked with CUDA_VISIBLE_DEVICES, with
# the official metrics after each checkpoint, early stopping on F1, the best checkpoint kept, the
# reference's prediction files and a QA SavedModel export. Left as is, it runs on the CPU on the
# bundled SQuAD 2.0 sample with a tiny model. For SQuAD 1.1 set VERSION_2_WITH_NEGATIVE=False and the
# v1.1 files; for the reference README's BERT-Base run: MAX_SEQ_LENGTH=384 DOC_STRIDE=128
# TRAIN_BATCH_SIZE=12 LEARNING_RATE=3e-5 NUM_TRAIN_EPOCHS=2.0 SAVE_CHECKPOINTS_STEPS=1000.
set -euo pipefail

BERT_DIR="${BERT_DIR:-}"                    # released or converted model folder; empty = tiny model
TRAIN_FILE="${TRAIN_FILE:-sample_data/squad/train-v2.0.json}"   # e.g. $SQUAD_DIR/train-v2.0.json
PREDICT_FILE="${PREDICT_FILE:-sample_data/squad/dev-v2.0.json}" # a dev file with answers (--do_eval)
VERSION_2_WITH_NEGATIVE="${VERSION_2_WITH_NEGATIVE:-True}"      # False for SQuAD 1.1
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_squad_gpu}"
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"   # e.g. 1; empty = let TensorFlow choose (CPU if none)
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-96}"
DOC_STRIDE="${DOC_STRIDE:-48}"
MAX_QUERY_LENGTH="${MAX_QUERY_LENGTH:-24}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-16}"
PREDICT_BATCH_SIZE="${PREDICT_BATCH_SIZE:-32}"
NUM_ACCUMULATION_STEPS="${NUM_ACCUMULATION_STEPS:-1}"   # e.g. 4: four micro-batches of 4 make one of 16
LEARNING_RATE="${LEARNING_RATE:-5e-5}"
NUM_TRAIN_EPOCHS="${NUM_TRAIN_EPOCHS:-2.0}"
SAVE_CHECKPOINTS_STEPS="${SAVE_CHECKPOINTS_STEPS:-4}"
MAX_STEPS_WITHOUT_DECREASE="${MAX_STEPS_WITHOUT_DECREASE:-20}"   # early stopping patience in steps; 0 = off
USE_AMP="${USE_AMP:-False}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi

# shellcheck disable=SC2046
"${PYTHON}" run_squad.py $(model_flags "${BERT_DIR}") --vocab_file="$(vocab_file "${BERT_DIR}")" \
  --train_file="${TRAIN_FILE}" --predict_file="${PREDICT_FILE}" \
  --version_2_with_negative="${VERSION_2_WITH_NEGATIVE}" --output_dir="${OUTPUT_DIR}" \
  --do_lower_case="${DO_LOWER_CASE}" --do_train=True --do_eval=True --do_predict=True --do_export=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --doc_stride="${DOC_STRIDE}" \
  --max_query_length="${MAX_QUERY_LENGTH}" --train_batch_size="${TRAIN_BATCH_SIZE}" \
  --predict_batch_size="${PREDICT_BATCH_SIZE}" --num_accumulation_steps="${NUM_ACCUMULATION_STEPS}" \
  --learning_rate="${LEARNING_RATE}" --num_train_epochs="${NUM_TRAIN_EPOCHS}" \
  --save_checkpoints_steps="${SAVE_CHECKPOINTS_STEPS}" \
  --max_steps_without_decrease="${MAX_STEPS_WITHOUT_DECREASE}" --use_amp="${USE_AMP}"
echo "predictions.json, nbest_predictions.json, eval_results.txt, best/ and export/ in ${OUTPUT_DIR}"
