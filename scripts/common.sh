# Sourced by every script in scripts/: the interpreter, the repo root and the tiny demo model.
# Nothing here needs editing; each script's variables are at its own top.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${PYTHON:=${REPO_ROOT}/.venv/bin/python}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
SAMPLE_DIR="${REPO_ROOT}/sample_data"
# Used when BERT_DIR is empty: a 2-layer model trained from scratch on the bundled sample corpus.
TINY_CONFIG="${SAMPLE_DIR}/pretraining/bert_config_tiny.json"
TINY_VOCAB="${SAMPLE_DIR}/pretraining/vocab.txt"

# model_flags BERT_DIR -> the --bert_config_file/--init_checkpoint flags for a released checkpoint
# folder (bert_config.json, vocab.txt, bert_model.ckpt.*), or the tiny demo model if empty.
model_flags() {
  local dir="$1"
  if [ -n "${dir}" ]; then
    echo "--bert_config_file=${dir}/bert_config.json --init_checkpoint=${dir}/bert_model.ckpt"
  else
    echo "--bert_config_file=${TINY_CONFIG}"
  fi
}

# vocab_file BERT_DIR -> the folder's vocab.txt, or the tiny demo model's.
vocab_file() {
  if [ -n "$1" ]; then echo "$1/vocab.txt"; else echo "${TINY_VOCAB}"; fi
}

# tpu_flags -> --use_tpu=False, or with TPU_NAME set the flags that reach that Cloud TPU
# (NUM_TPU_CORES, and TPU_ZONE / GCP_PROJECT when given).
tpu_flags() {
  if [ -z "${TPU_NAME:-}" ]; then echo "--use_tpu=False"; return; fi
  local out="--use_tpu=True --tpu_name=${TPU_NAME} --num_tpu_cores=${NUM_TPU_CORES}"
  [ -n "${TPU_ZONE:-}" ] && out="${out} --tpu_zone=${TPU_ZONE}"
  [ -n "${GCP_PROJECT:-}" ] && out="${out} --gcp_project=${GCP_PROJECT}"
  echo "${out}"
}
