"""End-to-end tests of run_pretraining.py on a tiny model and the bilingual demo corpus.

run_pretraining.py defines its flags at import time, as every runner does, and other runners
define flags of the same names (bert_config_file, output_dir, ...), so the script is only ever
imported in a subprocess here. The training runs are shared through module-scoped fixtures:

  records      the demo corpus (sample_data/pretraining, English and Chinese) through
               create_pretraining_data.py, sequence length 32.
  pretrained   from scratch, --do_train --do_eval with evaluation after every checkpoint (the new
               train_and_evaluate path), 45 steps.
  continued    --init_checkpoint=<pretrained's checkpoint>, learning rate 0, 1 step, then
               --do_eval (the reference train-then-evaluate path).
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import artifacts

REPO_ROOT = artifacts.REPO_ROOT
SAMPLE_DIR = os.path.join(REPO_ROOT, "sample_data", "pretraining")
CONFIG_FILE = os.path.join(SAMPLE_DIR, "bert_config_tiny.json")
VOCAB_FILE = os.path.join(SAMPLE_DIR, "vocab.txt")
MAX_SEQ_LENGTH = 32
MAX_PREDICTIONS = 5
TRAIN_STEPS = 45
CHECKPOINT_STEPS = 15
REFERENCE_EVAL_KEYS = [
    "global_step",
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "next_sentence_accuracy",
    "next_sentence_loss",
]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)


def _run_script(args, timeout=240):
    return subprocess.run(
        [sys.executable, "run_pretraining.py"] + args,
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _common_flags(input_file, output_dir):
    return [
        f"--bert_config_file={CONFIG_FILE}",
        f"--input_file={input_file}",
        f"--output_dir={output_dir}",
        f"--max_seq_length={MAX_SEQ_LENGTH}",
        f"--max_predictions_per_seq={MAX_PREDICTIONS}",
        "--train_batch_size=16",
        "--eval_batch_size=16",
        "--max_eval_steps=4",
        "--tf_random_seed=1",
    ]


def _scalar_events(event_dir, tag):
    """{global_step: value} of a scalar summary in the event files of a directory."""
    values = {}
    for name in sorted(tf.io.gfile.listdir(event_dir)):
        if not name.startswith("events."):
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = (
                        float(tf.make_ndarray(value.tensor))
                        if value.HasField("tensor")
                        else value.simple_value
                    )
    return values


def _read_eval_results(output_dir):
    with open(os.path.join(output_dir, "eval_results.txt")) as f:
        return dict(line.rstrip("\n").split(" = ", 1) for line in f)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Demo-corpus TFRecords from create_pretraining_data.py, round-robin over two files."""
    data_dir = tmp_path_factory.mktemp("pretraining_data")
    paths = [str(data_dir / "train-0.tfrecord"), str(data_dir / "train-1.tfrecord")]
    inputs = [
        os.path.join(SAMPLE_DIR, name) for name in ("sample_text_en.txt", "sample_text_zh.txt")
    ]
    result = subprocess.run(
        [
            sys.executable,
            "create_pretraining_data.py",
            f"--input_file={','.join(inputs)}",
            f"--output_file={','.join(paths)}",
            f"--vocab_file={VOCAB_FILE}",
            f"--max_seq_length={MAX_SEQ_LENGTH}",
            f"--max_predictions_per_seq={MAX_PREDICTIONS}",
            "--dupe_factor=3",
        ],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = [sum(1 for _ in tf.data.TFRecordDataset(path)) for path in paths]
    assert min(counts) > 200, counts
    return {"train_glob": str(data_dir / "train-*.tfrecord"), "files": paths}


@pytest.fixture(scope="module")
def pretrained(records, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("pretrained"))
    result = _run_script(
        _common_flags(records["train_glob"], output_dir)
        + [
            "--do_train",
            "--do_eval",
            f"--num_train_steps={TRAIN_STEPS}",
            "--num_warmup_steps=5",
            "--learning_rate=2e-3",
            f"--save_checkpoints_steps={CHECKPOINT_STEPS}",
            "--save_summary_steps=5",
            "--max_steps_without_decrease=1000",
            "--log_step_count_steps=15",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "output_dir": output_dir,
        "log": result.stderr,
        "checkpoint": os.path.join(output_dir, f"model.ckpt-{TRAIN_STEPS}"),
    }


@pytest.fixture(scope="module")
def continued(records, pretrained, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("continued"))
    result = _run_script(
        _common_flags(records["train_glob"], output_dir)
        + [
            f"--init_checkpoint={pretrained['checkpoint']}",
            "--do_train",
            "--do_eval",
            "--num_train_steps=1",
            "--num_warmup_steps=0",
            "--learning_rate=0",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "output_dir": output_dir,
        "log": result.stderr,
        "checkpoint": os.path.join(output_dir, "model.ckpt-1"),
    }


def _expected_checkpoint_variables(config):
    """Spec 8.4 for a config: the released names, then the optimizer's slots and global_step."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    model = {
        "bert/embeddings/word_embeddings": [v, h],
        "bert/embeddings/token_type_embeddings": [config["type_vocab_size"], h],
        "bert/embeddings/position_embeddings": [config["max_position_embeddings"], h],
        "bert/embeddings/LayerNorm/beta": [h],
        "bert/embeddings/LayerNorm/gamma": [h],
        "bert/pooler/dense/kernel": [h, h],
        "bert/pooler/dense/bias": [h],
        "cls/predictions/transform/dense/kernel": [h, h],
        "cls/predictions/transform/dense/bias": [h],
        "cls/predictions/transform/LayerNorm/beta": [h],
        "cls/predictions/transform/LayerNorm/gamma": [h],
        "cls/predictions/output_bias": [v],
        "cls/seq_relationship/output_weights": [2, h],
        "cls/seq_relationship/output_bias": [2],
    }
    for layer in range(config["num_hidden_layers"]):
        prefix = f"bert/encoder/layer_{layer}/"
        for part in ("query", "key", "value"):
            model[prefix + f"attention/self/{part}/kernel"] = [h, h]
            model[prefix + f"attention/self/{part}/bias"] = [h]
        model[prefix + "attention/output/dense/kernel"] = [h, h]
        model[prefix + "attention/output/dense/bias"] = [h]
        model[prefix + "intermediate/dense/kernel"] = [h, i]
        model[prefix + "intermediate/dense/bias"] = [i]
        model[prefix + "output/dense/kernel"] = [i, h]
        model[prefix + "output/dense/bias"] = [h]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            model[prefix + norm + "/beta"] = [h]
            model[prefix + norm + "/gamma"] = [h]
    expected = dict(model)
    for name, shape in model.items():
        expected[name + "/adam_m"] = shape
        expected[name + "/adam_v"] = shape
    expected["global_step"] = []
    return model, expected


def test_pretraining_drives_masked_lm_loss_down(pretrained):
    vocab_size = json.load(open(CONFIG_FILE))["vocab_size"]
    # Evaluations after each checkpoint on the training files (the reference's eval data).
    eval_mlm_loss = _scalar_events(os.path.join(pretrained["output_dir"], "eval"), "masked_lm_loss")
    assert sorted(eval_mlm_loss) == list(range(CHECKPOINT_STEPS, TRAIN_STEPS + 1, CHECKPOINT_STEPS))
    last = eval_mlm_loss[TRAIN_STEPS]
    # The first logged training loss (step 1) is masked LM + next sentence of an untrained model:
    # both heads guess uniformly, ln(V) + ln(2). The masked-LM part must drop by over one nat.
    train_loss = _scalar_events(pretrained["output_dir"], "loss")
    assert min(train_loss) <= 1  # Summaries every 5 steps from the first step.
    first_masked_lm_loss = train_loss[min(train_loss)] - math.log(2)
    assert first_masked_lm_loss == pytest.approx(math.log(vocab_size), abs=0.3), train_loss
    assert last < first_masked_lm_loss - 1.0, (train_loss, eval_mlm_loss)

    results = _read_eval_results(pretrained["output_dir"])
    assert sorted(results) == REFERENCE_EVAL_KEYS
    assert int(results["global_step"]) == TRAIN_STEPS
    assert float(results["masked_lm_loss"]) == pytest.approx(last, rel=1e-5)
    assert 0.0 < float(results["masked_lm_accuracy"]) <= 1.0
    # The Estimator's `loss` is the mean per-batch total loss; it includes the next-sentence loss.
    assert float(results["loss"]) > float(results["masked_lm_loss"])
    assert "Early stopping: stop when masked_lm_loss has not decreased" in pretrained["log"]
    assert os.path.isdir(os.path.join(pretrained["output_dir"], "best"))


def test_checkpoint_variables_match_released_names(continued):
    config = json.load(open(CONFIG_FILE))
    model, expected = _expected_checkpoint_variables(config)
    assert len(model) == 5 + 16 * config["num_hidden_layers"] + 2 + 7
    # The run without early stopping (whose hook adds its own `signal_early_stopping/STOP` flag).
    saved = dict(tf.train.list_variables(continued["checkpoint"]))
    assert {name: list(shape) for name, shape in saved.items()} == expected
    # No root-level classifier variables and no output weights for the masked LM (tied embeddings).
    assert not any(name.startswith("cls/predictions/output_weights") for name in saved)


def test_continued_pretraining_restores_every_bert_and_cls_variable(pretrained, continued):
    model, _ = _expected_checkpoint_variables(json.load(open(CONFIG_FILE)))
    log = continued["log"]
    for name in model:
        assert f"name = {name}:0, shape = " in log and f"{name}:0, shape" in log
        line = next(ln for ln in log.splitlines() if f"name = {name}:0, shape = " in ln)
        assert line.endswith("*INIT_FROM_CKPT*"), line
    assert f"Initialized {len(model)} of {len(model)} variables from" in log

    # Learning rate 0 for one step: every weight must still equal the source checkpoint's.
    for name in model:
        np.testing.assert_array_equal(
            tf.train.load_variable(continued["checkpoint"], name),
            tf.train.load_variable(pretrained["checkpoint"], name),
            err_msg=name,
        )
    # Same weights, same (unshuffled) eval data: the reference-style eval gives the same numbers.
    before, after = (
        _read_eval_results(pretrained["output_dir"]),
        _read_eval_results(continued["output_dir"]),
    )
    assert sorted(after) == REFERENCE_EVAL_KEYS
    assert int(after["global_step"]) == 1
    for key in ("masked_lm_loss", "masked_lm_accuracy", "next_sentence_accuracy"):
        assert float(after[key]) == pytest.approx(float(before[key]), rel=1e-4, abs=1e-6), key


def test_pretraining_from_scratch_initialises_nothing_from_a_checkpoint(pretrained):
    assert "**** Trainable Variables ****" in pretrained["log"]
    assert "*INIT_FROM_CKPT*" not in pretrained["log"]
    assert "Initialized " not in pretrained["log"]


# Graph-level checks that need the module imported: run in one subprocess, results as JSON.
_GRAPH_CHECKS = r"""
import json, sys
import numpy as np
import tensorflow as tf
import modeling, run_pretraining
tf1 = tf.compat.v1
out = {}
config = modeling.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=16, type_vocab_size=2,
                             max_position_embeddings=16)
with tf.Graph().as_default():
    seq = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    pos = np.array([[3, 0], [1, 1]], dtype=np.int32)
    gathered = run_pretraining.gather_indexes(tf.constant(seq), tf.constant(pos))
    # Masked-LM head on random inputs: compare with numpy using the tied embedding table.
    x = tf.constant(np.random.RandomState(0).randn(2, 4, 8).astype(np.float32))
    table = tf1.get_variable("emb", [50, 8], initializer=tf1.random_normal_initializer(seed=1))
    label_ids = tf.constant([[5, 7], [9, 0]], dtype=tf.int32)
    weights = tf.constant([[1.0, 1.0], [1.0, 0.0]])
    mlm = run_pretraining.get_masked_lm_output(config, x, table, tf.constant(pos), label_ids,
                                               weights)
    nsp = run_pretraining.get_next_sentence_output(config, x[:, 0], tf.constant([[0], [1]]))
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        # A non-zero bias, so that the test sees whether it is added.
        bias = next(v for v in tf1.global_variables() if v.op.name == "cls/predictions/output_bias")
        sess.run(bias.assign(np.linspace(-1, 1, 50, dtype=np.float32)))
        g, loss, lp, xv, tbl, nsp_lp = sess.run([gathered, mlm.loss, mlm.log_probs, x, table,
                                                 nsp.log_probs])
        var = {v.op.name: sess.run(v) for v in tf1.global_variables()}
    out["gathered"] = g.tolist()
    # The head in numpy: gather, dense + tanh-GELU, LayerNorm (eps 1e-12), tied output + bias.
    t = xv.reshape(8, 8)[[3, 0, 5, 5]]
    t = (t @ var["cls/predictions/transform/dense/kernel"]
         + var["cls/predictions/transform/dense/bias"])
    t = 0.5 * t * (1 + np.tanh(np.sqrt(2 / np.pi) * (t + 0.044715 * t ** 3)))
    mean, variance = t.mean(-1, keepdims=True), t.var(-1, keepdims=True)
    t = (t - mean) / np.sqrt(variance + 1e-12) * var["cls/predictions/transform/LayerNorm/gamma"] \
        + var["cls/predictions/transform/LayerNorm/beta"]
    logits = t @ tbl.T + var["cls/predictions/output_bias"]
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_example = -log_probs[np.arange(4), [5, 7, 9, 0]]
    out["loss"] = float(loss)
    out["numpy_loss"] = float((per_example * [1, 1, 1, 0]).sum() / (3 + 1e-5))
    out["log_probs_max_diff"] = float(np.abs(lp - log_probs).max())
    out["nsp_shape"] = list(nsp_lp.shape)
    out["variables"] = sorted(var)
    model_fn = run_pretraining.model_fn_builder(config, None, 1e-3, 10, 1)
    try:
        model_fn({}, None, tf.estimator.ModeKeys.PREDICT, {"use_tpu": False})
        out["predict_error"] = None
    except ValueError as e:
        out["predict_error"] = str(e)

files = sys.argv[1:]
for name, is_training in (("train", True), ("eval", False)):
    fn = run_pretraining.input_fn_builder(files, 32, 5, is_training=is_training)
    batch = next(iter(fn({"batch_size": 7})))
    out[name] = {k: [v.dtype.name, v.shape.as_list()] for k, v in batch.items()}
    out[name + "_ids"] = batch["input_ids"].numpy().tolist()
first = [tf.train.Example.FromString(r.numpy()).features.feature["input_ids"].int64_list.value[:]
         for r in tf.data.TFRecordDataset(files[0]).take(7)]
out["file_ids"] = [list(x) for x in first]
print("JSON:" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def graph_checks(records):
    result = subprocess.run(
        [sys.executable, "-c", _GRAPH_CHECKS] + records["files"],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("JSON:", 1)[1])


def test_heads_gather_and_tied_masked_lm_loss_match_numpy(graph_checks):
    out = graph_checks
    seq = np.arange(24).reshape(2, 4, 3)
    np.testing.assert_array_equal(out["gathered"], [seq[0, 3], seq[0, 0], seq[1, 1], seq[1, 1]])
    assert out["loss"] == pytest.approx(out["numpy_loss"], rel=1e-5)
    assert out["log_probs_max_diff"] < 1e-4
    assert out["nsp_shape"] == [2, 2]
    assert out["variables"] == sorted(
        [
            "emb",
            "cls/predictions/output_bias",
            "cls/predictions/transform/dense/kernel",
            "cls/predictions/transform/dense/bias",
            "cls/predictions/transform/LayerNorm/beta",
            "cls/predictions/transform/LayerNorm/gamma",
            "cls/seq_relationship/output_weights",
            "cls/seq_relationship/output_bias",
        ]
    )
    assert "supports only TRAIN and EVAL" in out["predict_error"]


def test_input_fn_batches_int32_features_and_eval_keeps_file_order(graph_checks):
    out = graph_checks
    for mode in ("train", "eval"):
        assert out[mode]["input_ids"] == ["int32", [7, 32]]
        assert out[mode]["masked_lm_positions"] == ["int32", [7, 5]]
        assert out[mode]["masked_lm_weights"] == ["float32", [7, 5]]
        assert out[mode]["next_sentence_labels"] == ["int32", [7, 1]]
    assert out["eval_ids"] == out["file_ids"]  # Evaluation reads the files in order.
    assert out["train_ids"] != out["file_ids"]  # Training shuffles files and records.


BAD_INPUTS = [
    ([], "At least one of `do_train` or `do_eval` must be True"),
    (["--do_train", "--input_file=/nonexistent/train-*.tfrecord"], "matches no file"),
    (["--do_train", "--max_seq_length=64"], "pass --max_seq_length=32"),
    (["--do_eval", "--max_predictions_per_seq=20"], "pass --max_predictions_per_seq=5"),
    (
        [
            "--do_train",
            "--do_eval",
            "--max_steps_without_decrease=10",
            "--early_stopping_metric=eval_accuracy",
        ],
        "use one of loss, masked_lm_accuracy",
    ),
]


def test_bad_input_gives_one_error_line(records, tmp_path):
    # The cases run concurrently: each is a fresh interpreter that mostly waits for TF's import.
    processes = []
    for i, (extra, message) in enumerate(BAD_INPUTS):
        output_dir = str(tmp_path / f"out{i}")
        flags = _common_flags(records["train_glob"], output_dir)
        overridden = {arg.split("=")[0] for arg in extra}
        flags = [f for f in flags if f.split("=")[0] not in overridden] + extra
        process = subprocess.Popen(
            [sys.executable, "run_pretraining.py"] + flags,
            cwd=REPO_ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append((process, message, output_dir))
    for process, message, output_dir in processes:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 1, stderr[-2000:]
        error_lines = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
        assert len(error_lines) == 1 and message in error_lines[0], stderr[-2000:]
        assert "Traceback" not in stderr
        assert not os.path.exists(output_dir)
