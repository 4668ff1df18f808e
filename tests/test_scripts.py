"""Runs every shell script in scripts/ as written: device variables empty, so on the CPU on
sample_data."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

# script -> files (relative to OUTPUT_DIR / EXPORT_DIR) that a successful run must leave behind.
EXPECTED_OUTPUTS = {
    "pretrain_gpu.sh": ["train.tfrecord", "eval.tfrecord", "model/eval_results.txt",
                        "model/model.ckpt-20.index"],
    "pretrain_multi_gpu.sh": ["train.tfrecord", "model/model.ckpt-20.index"],
    "pretrain_tpu.sh": ["train.tfrecord", "model/eval_results.txt", "model/model.ckpt-20.index"],
    "finetune_gpu.sh": ["eval_results.txt", "test_results.tsv", "test_predictions.tsv",
                        "labels.txt", "best"],
    "finetune_tpu.sh": ["eval_results.txt", "test_results.tsv"],
    "extract_features.sh": ["features.jsonl", "sentences.npy"],
    "export.sh": ["model/saved_model/saved_model.pb", "model/frozen_graph/model.pb",
                  "model/tflite/model.tflite", "model/tflite_int8/model.tflite"],
    "ner_gpu.sh": ["eval_results.txt", "test_predictions.txt", "test_predictions.jsonl",
                   "labels.txt", "best", "export/saved_model/saved_model.pb"],
    "squad_gpu.sh": ["predictions.json", "nbest_predictions.json", "null_odds.json",
                     "eval_results.txt", "best", "export/saved_model/saved_model.pb"],
    "squad_tpu.sh": ["predictions.json", "nbest_predictions.json", "eval_results.txt"],
}


def test_every_script_is_covered():
    scripts = {os.path.basename(p) for p in glob.glob(os.path.join(REPO_ROOT, "scripts", "*.sh"))}
    assert scripts - {"common.sh"} == set(EXPECTED_OUTPUTS)


@pytest.mark.parametrize("script", sorted(EXPECTED_OUTPUTS))
def test_script_runs_on_cpu_as_written(script, tmp_path):
    out = str(tmp_path / "out")
    env = dict(os.environ, OUTPUT_DIR=out, EXPORT_DIR=out, PYTHON=sys.executable,
               TF_CPP_MIN_LOG_LEVEL="2")
    # The device variables stay empty, as a user on a CPU-only machine would leave them.
    for name in ("CUDA_VISIBLE_DEVICES", "NUM_GPUS", "TPU_NAME", "BERT_DIR"):
        env.pop(name, None)
    proc = subprocess.run(["bash", os.path.join("scripts", script)], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for relative in EXPECTED_OUTPUTS[script]:
        assert os.path.exists(os.path.join(out, relative)), (relative, proc.stdout[-2000:])
    if script == "extract_features.sh":
        vectors = np.load(os.path.join(out, "sentences.npy"))
        lines = open(os.path.join(REPO_ROOT, "sample_data", "extract_features_input.txt")).read()
        assert vectors.shape[0] == len(lines.splitlines()) and np.isfinite(vectors).all()
    if script == "export.sh":
        # The predictor step classified the two texts piped into it.
        assert "positive" in proc.stdout or "negative" in proc.stdout
