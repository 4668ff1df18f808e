#!/usr/bin/env bash
# Export a fine-tuned classifier for serving: a TF Serving SavedModel, a frozen graph for Java/C++ and
# TFLite models for mobile, each verified against the checkpoint; then classify a few texts with the
# exported model. Left as is, it fine-tunes a tiny model on the bundled sample task first.
set -euo pipefail

FINETUNED_DIR="${FINETUNED_DIR:-}"          # output_dir of run_classifier.py (checkpoints, labels.txt)
BERT_DIR="${BERT_DIR:-}"                    # the model folder it was fine-tuned from (config, vocab)
EXPORT_DIR="${EXPORT_DIR:-/tmp/bert_export}"
FORMATS="${FORMATS:-saved_model,frozen_graph,tflite,tflite_int8}"   # also tflite_fp16, tftrt (GPU)
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-64}"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi
if [ -n "${BERT_DIR}" ]; then CONFIG="${BERT_DIR}/bert_config.json"; VOCAB="${BERT_DIR}/vocab.txt";
else CONFIG="${TINY_CONFIG}"; VOCAB="${TINY_VOCAB}"; fi
if [ -z "${FINETUNED_DIR}" ]; then
  FINETUNED_DIR="${EXPORT_DIR}/tiny_model"
  OUTPUT_DIR="${FINETUNED_DIR}" NUM_TRAIN_EPOCHS=0.5 MAX_STEPS_WITHOUT_DECREASE=0 MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH}" \
    bash "$(dirname "$0")/finetune_gpu.sh"
fi
CHECKPOINT="$("${PYTHON}" -c 'import sys, tensorflow as tf; print(tf.train.latest_checkpoint(sys.argv[1]))' "${FINETUNED_DIR}")"

"${PYTHON}" export_model.py --task=classifier --init_checkpoint="${CHECKPOINT}" \
  --bert_config_file="${CONFIG}" --vocab_file="${VOCAB}" --do_lower_case="${DO_LOWER_CASE}" \
  --max_seq_length="${MAX_SEQ_LENGTH}" --export_dir="${EXPORT_DIR}/model" --format="${FORMATS}"
printf 'This film was a delight.\n这部电影太无聊了。\n' | \
  "${PYTHON}" export_model.py --predict_saved_model="${EXPORT_DIR}/model/saved_model" --input_file=-
echo "Exports in ${EXPORT_DIR}/model"
