#!/usr/bin/env bash
# Fine-tune for SQuAD 1.1 or 2.0 question answering on a Cloud TPU (TPUEstimator, as the reference),
# then write the reference's prediction files and the official metrics. Paths must be gs:// on a TPU.
# Left as is (TPU_NAME empty), it runs on the CPU on the bundled SQuAD 1.1 sample with a tiny model.
# The reference README's BERT-Large SQuAD 1.1 run: MAX_SEQ_LENGTH=384 DOC_STRIDE=128
# TRAIN_BATCH_SIZE=24 LEARNING_RATE=3e-5 NUM_TRAIN_EPOCHS=2.0 ITERATIONS_PER_LOOP=1000.
set -euo pipefail

TPU_NAME="${TPU_NAME:-}"                    # e.g. my-tpu; empty = CPU
TPU_ZONE="${TPU_ZONE:-}"
GCP_PROJECT="${GCP_PROJECT:-}"
NUM_TPU_CORES="${NUM_TPU_CORES:-8}"
BERT_DIR="${BERT_DIR:-}"                    # e.g. gs://my-bucket/uncased_L-24_H-1024_A-16
TRAIN_FILE="${TRAIN_FILE:-sample_data/squad/train-v1.1.json}"   # e.g. gs://my-bucket/squad/train-v1.1.json
PREDICT_FILE="${PREDICT_FILE:-sample_data/squad/dev-v1.1.json}"
VERSION_2_WITH_NEGATIVE="${VERSION_2_WITH_NEGATIVE:-False}"     # True for SQuAD 2.0
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_squad_tpu}"  # e.g. gs://my-bucket/squad_large
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-96}"
DOC_STRIDE="${DOC_STRIDE:-48}"
MAX_QUERY_LENGTH="${MAX_QUERY_LENGTH:-24}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-16}"
PREDICT_BATCH_SIZE="${PREDICT_BATCH_SIZE:-8}"
LEARNING_RATE="${LEARNING_RATE:-5e-5}"
NUM_TRAIN_EPOCHS="${NUM_TRAIN_EPOCHS:-2.0}"
ITERATIONS_PER_LOOP="${ITERATIONS_PER_LOOP:-5}"     # e.g. 1000 on a TPU

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
TPU_FLAGS="$(tpu_flags)"

# shellcheck disable=SC2046,SC2086
"${PYTHON}" run_squad.py $(model_flags "${BERT_DIR}") --vocab_file="$(vocab_file "${BERT_DIR}")" ${TPU_FLAGS} \
  --train_file="${TRAIN_FILE}" --predict_file="${PREDICT_FILE}" \
  --version_2_with_negative="${VERSION_2_WITH_NEGATIVE}" --output_dir="${OUTPUT_DIR}" \
  --do_lower_case="${DO_LOWER_CASE}" --do_train=True --do_predict=True --do_eval=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --doc_stride="${DOC_STRIDE}" \
  --max_query_length="${MAX_QUERY_LENGTH}" --train_batch_size="${TRAIN_BATCH_SIZE}" \
  --predict_batch_size="${PREDICT_BATCH_SIZE}" --learning_rate="${LEARNING_RATE}" \
  --num_train_epochs="${NUM_TRAIN_EPOCHS}" --iterations_per_loop="${ITERATIONS_PER_LOOP}" \
  --save_checkpoints_steps="${ITERATIONS_PER_LOOP}"
echo "predictions.json, nbest_predictions.json and eval_results.txt in ${OUTPUT_DIR}"
