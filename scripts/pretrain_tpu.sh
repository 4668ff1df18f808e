#!/usr/bin/env bash
# Continued pretraining on a Cloud TPU (TPUEstimator). TPUs read and write only gs:// paths, so point
# BERT_DIR and OUTPUT_DIR at a bucket. Left as is (TPU_NAME empty), it runs the same commands on the CPU on
# the bundled sample corpus with a tiny model.
set -euo pipefail

TPU_NAME="${TPU_NAME:-}"                    # e.g. my-tpu; empty = CPU
TPU_ZONE="${TPU_ZONE:-}"                    # e.g. us-central1-b (optional)
GCP_PROJECT="${GCP_PROJECT:-}"              # optional
NUM_TPU_CORES="${NUM_TPU_CORES:-8}"
BERT_DIR="${BERT_DIR:-}"                    # e.g. gs://my-bucket/uncased_L-12_H-768_A-12
CORPUS="${CORPUS:-sample_data/pretraining/sample_text_en.txt}"
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_pretrain_tpu}"   # e.g. gs://my-bucket/pretrain
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-128}"
MAX_PREDICTIONS="${MAX_PREDICTIONS:-20}"
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-32}"  # e.g. 256 on a v3-8
NUM_TRAIN_STEPS="${NUM_TRAIN_STEPS:-20}"
NUM_WARMUP_STEPS="${NUM_WARMUP_STEPS:-2}"
LEARNING_RATE="${LEARNING_RATE:-2e-5}"
ITERATIONS_PER_LOOP="${ITERATIONS_PER_LOOP:-10}"    # e.g. 1000 on a TPU

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
VOCAB="$(vocab_file "${BERT_DIR}")"
TPU_FLAGS="$(tpu_flags)"
case "${OUTPUT_DIR}" in gs://*) ;; *) mkdir -p "${OUTPUT_DIR}" ;; esac

"${PYTHON}" create_pretraining_data.py --input_file="${CORPUS}" --output_file="${OUTPUT_DIR}/train.tfrecord" \
  --vocab_file="${VOCAB}" --do_lower_case="${DO_LOWER_CASE}" --max_seq_length="${MAX_SEQ_LENGTH}" \
  --max_predictions_per_seq="${MAX_PREDICTIONS}" --dupe_factor=5

# shellcheck disable=SC2046,SC2086
"${PYTHON}" run_pretraining.py $(model_flags "${BERT_DIR}") ${TPU_FLAGS} \
  --input_file="${OUTPUT_DIR}/train.tfrecord" --output_dir="${OUTPUT_DIR}/model" \
  --do_train=True --do_eval=True --max_eval_steps=5 \
  --max_seq_length="${MAX_SEQ_LENGTH}" --max_predictions_per_seq="${MAX_PREDICTIONS}" \
  --train_batch_size="${TRAIN_BATCH_SIZE}" --num_train_steps="${NUM_TRAIN_STEPS}" \
  --num_warmup_steps="${NUM_WARMUP_STEPS}" --learning_rate="${LEARNING_RATE}" \
  --iterations_per_loop="${ITERATIONS_PER_LOOP}" --save_checkpoints_steps="${ITERATIONS_PER_LOOP}"
echo "Pretrained checkpoint and eval_results.txt in ${OUTPUT_DIR}/model"
