#!/usr/bin/env bash
# Fine-tune a classifier on a Cloud TPU (TPUEstimator; eval/predict sets are padded to whole batches as
# the reference does). Paths must be gs:// on a TPU. Left as is (TPU_NAME empty), it runs on the CPU on
# the bundled bilingual sample task with a tiny model.
set -euo pipefail

TPU_NAME="${TPU_NAME:-}"                    # e.g. my-tpu; empty = CPU
TPU_ZONE="${TPU_ZONE:-}"
GCP_PROJECT="${GCP_PROJECT:-}"
NUM_TPU_CORES="${NUM_TPU_CORES:-8}"
BERT_DIR="${BERT_DIR:-}"                    # e.g. gs://my-bucket/uncased_L-12_H-768_A-12
DATA_DIR="${DATA_DIR:-sample_data/classifier}"
TASK_NAME="${TASK_NAME:-tsv}"
TEXT_A_COLUMN="${TEXT_A_COLUMN:-text}"
LABEL_COLUMN="${LABEL_COLUMN:-label}"
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_finetune_tpu}"  # e.g. gs://my-bucket/finetune
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-64}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-32}"
EVAL_BATCH_SIZE="${EVAL_BATCH_SIZE:-8}"
LEARNING_RATE="${LEARNING_RATE:-5e-5}"
NUM_TRAIN_EPOCHS="${NUM_TRAIN_EPOCHS:-2.0}"
ITERATIONS_PER_LOOP="${ITERATIONS_PER_LOOP:-5}"     # e.g. 1000 on a TPU

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
TPU_FLAGS="$(tpu_flags)"

# shellcheck disable=SC2046,SC2086
"${PYTHON}" run_classifier.py $(model_flags "${BERT_DIR}") --vocab_file="$(vocab_file "${BERT_DIR}")" ${TPU_FLAGS} \
  --task_name="${TASK_NAME}" --data_dir="${DATA_DIR}" --text_a_column="${TEXT_A_COLUMN}" \
  --label_column="${LABEL_COLUMN}" --output_dir="${OUTPUT_DIR}" --do_lower_case="${DO_LOWER_CASE}" \
  --do_train=True --do_eval=True --do_predict=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --train_batch_size="${TRAIN_BATCH_SIZE}" \
  --eval_batch_size="${EVAL_BATCH_SIZE}" --learning_rate="${LEARNING_RATE}" \
  --num_train_epochs="${NUM_TRAIN_EPOCHS}" --iterations_per_loop="${ITERATIONS_PER_LOOP}" \
  --save_checkpoints_steps="${ITERATIONS_PER_LOOP}"
echo "eval_results.txt and test_results.tsv in ${OUTPUT_DIR}"
