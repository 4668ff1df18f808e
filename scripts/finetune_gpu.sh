#!/usr/bin/env bash
# Fine-tune a classifier on one GPU, picked with CUDA_VISIBLE_DEVICES (the reference users' OOM fix: keep
# the job off a GPU that is already busy), with evaluation after each checkpoint, early stopping, the
# best checkpoint kept, test predictions and a SavedModel export. Left as is, it runs on the CPU on the
# bundled bilingual sample task with a tiny model.
set -euo pipefail

BERT_DIR="${BERT_DIR:-}"                    # released or converted model folder; empty = tiny model
DATA_DIR="${DATA_DIR:-sample_data/classifier}"     # train.tsv, dev.tsv, test.tsv
TASK_NAME="${TASK_NAME:-tsv}"               # cola, mnli, mrpc, xnli, tsv, csv, jsonl or a plugin's name
TEXT_A_COLUMN="${TEXT_A_COLUMN:-text}"      # for tsv/csv/jsonl: column index or header name
LABEL_COLUMN="${LABEL_COLUMN:-label}"
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_finetune_gpu}"
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"   # e.g. 1; empty = let TensorFlow choose (CPU if none)
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-64}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-32}"
NUM_ACCUMULATION_STEPS="${NUM_ACCUMULATION_STEPS:-1}"   # e.g. 4: four micro-batches of 8 make one batch of 32
LEARNING_RATE="${LEARNING_RATE:-5e-5}"
NUM_TRAIN_EPOCHS="${NUM_TRAIN_EPOCHS:-2.0}"
SAVE_CHECKPOINTS_STEPS="${SAVE_CHECKPOINTS_STEPS:-5}"
MAX_STEPS_WITHOUT_DECREASE="${MAX_STEPS_WITHOUT_DECREASE:-20}"   # early stopping patience in steps; 0 = off
USE_AMP="${USE_AMP:-False}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi

# shellcheck disable=SC2046
"${PYTHON}" run_classifier.py $(model_flags "${BERT_DIR}") --vocab_file="$(vocab_file "${BERT_DIR}")" \
  --task_name="${TASK_NAME}" --data_dir="${DATA_DIR}" --text_a_column="${TEXT_A_COLUMN}" \
  --label_column="${LABEL_COLUMN}" --output_dir="${OUTPUT_DIR}" --do_lower_case="${DO_LOWER_CASE}" \
  --do_train=True --do_eval=True --do_predict=True --do_export=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --train_batch_size="${TRAIN_BATCH_SIZE}" \
  --num_accumulation_steps="${NUM_ACCUMULATION_STEPS}" --learning_rate="${LEARNING_RATE}" \
  --num_train_epochs="${NUM_TRAIN_EPOCHS}" --save_checkpoints_steps="${SAVE_CHECKPOINTS_STEPS}" \
  --max_steps_without_decrease="${MAX_STEPS_WITHOUT_DECREASE}" --use_amp="${USE_AMP}"
echo "eval_results.txt, test_results.tsv, labels.txt and export/ in ${OUTPUT_DIR}"
