#!/usr/bin/env bash
# Fine-tune a named-entity tagger on one GPU, picked with CUDA_VISIBLE_DEVICES, with evaluation after
# each checkpoint, early stopping on entity F1, the best checkpoint kept, test predictions (CoNLL and
# JSONL entity spans) and a SavedModel whose predictor tags raw text. Left as is, it runs on the CPU
# on the bundled Chinese character-per-line sample with a tiny model and a CRF output layer.
set -euo pipefail

BERT_DIR="${BERT_DIR:-}"                    # released or converted model folder; empty = tiny model
DATA_DIR="${DATA_DIR:-sample_data/ner/zh}"  # train/dev/test.txt (CoNLL or char per line) or .jsonl
OUTPUT_DIR="${OUTPUT_DIR:-/tmp/bert_ner_gpu}"
LABEL_SCHEME="${LABEL_SCHEME:-auto}"        # auto, bio, iob1 or bioes
USE_CRF="${USE_CRF:-True}"                  # linear-chain CRF on top of the token layer
DO_LOWER_CASE="${DO_LOWER_CASE:-True}"
CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-}"   # e.g. 1; empty = let TensorFlow choose (CPU if none)
MAX_SEQ_LENGTH="${MAX_SEQ_LENGTH:-64}"      # longer sentences are tagged in overlapping windows
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-32}"
LEARNING_RATE="${LEARNING_RATE:-5e-5}"
NUM_TRAIN_EPOCHS="${NUM_TRAIN_EPOCHS:-2.0}"
SAVE_CHECKPOINTS_STEPS="${SAVE_CHECKPOINTS_STEPS:-5}"
MAX_STEPS_WITHOUT_DECREASE="${MAX_STEPS_WITHOUT_DECREASE:-20}"   # early stopping patience in steps; 0 = off
USE_AMP="${USE_AMP:-False}"

source "$(dirname "$0")/common.sh"
cd "${REPO_ROOT}"
if [ -n "${CUDA_VISIBLE_DEVICES}" ]; then export CUDA_VISIBLE_DEVICES; fi

# shellcheck disable=SC2046
"${PYTHON}" run_ner.py $(model_flags "${BERT_DIR}") --vocab_file="$(vocab_file "${BERT_DIR}")" \
  --data_dir="${DATA_DIR}" --output_dir="${OUTPUT_DIR}" --do_lower_case="${DO_LOWER_CASE}" \
  --label_scheme="${LABEL_SCHEME}" --use_crf="${USE_CRF}" \
  --do_train=True --do_eval=True --do_predict=True --do_export=True \
  --max_seq_length="${MAX_SEQ_LENGTH}" --train_batch_size="${TRAIN_BATCH_SIZE}" \
  --learning_rate="${LEARNING_RATE}" --num_train_epochs="${NUM_TRAIN_EPOCHS}" \
  --save_checkpoints_steps="${SAVE_CHECKPOINTS_STEPS}" \
  --max_steps_without_decrease="${MAX_STEPS_WITHOUT_DECREASE}" --use_amp="${USE_AMP}"
printf '王小明昨天去了上海。\nMaria Garcia works for Google in London.\n' | "${PYTHON}" -c '
import json, sys
import inference
predictor = inference.load_predictor(sys.argv[1])
for result in predictor.predict([line.rstrip("\n") for line in sys.stdin]):
    print(json.dumps({"text": result["text"], "entities": result["entities"]}, ensure_ascii=False))
' "${OUTPUT_DIR}/export/saved_model"
echo "eval_results.txt, test_predictions.txt/.jsonl, labels.txt, best/ and export/ in ${OUTPUT_DIR}"
