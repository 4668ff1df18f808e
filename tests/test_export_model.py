"""Tests for export_model.py: every format against the checkpoint, the Predictor, clean failures.

A tiny classifier is fine-tuned once per module by running run_classifier.py on the bundled sample
task (tiny config and vocab from sample_data/pretraining), then exported in every format by the
script itself. The artefacts are reloaded here, independently of the script's own verification,
and compared with the checkpoint's outputs computed in a fresh graph session.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import cli
import export_model as em
import exporting
import inference
import modeling
import tokenization
from tasks import classifier
from tests import artifacts

tf1 = tf.compat.v1

REPO_ROOT = artifacts.REPO_ROOT
SAMPLE_DIR = os.path.join(REPO_ROOT, "sample_data", "classifier")
TINY_CONFIG = os.path.join(REPO_ROOT, "sample_data", "pretraining", "bert_config_tiny.json")
TINY_VOCAB = os.path.join(REPO_ROOT, "sample_data", "pretraining", "vocab.txt")
SEQ = 32


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)
    return env


def _run(script, args, stdin=None, timeout=300):
    return subprocess.run([sys.executable, script] + args, cwd=REPO_ROOT, env=_env(), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def _export_args(checkpoint, export_dir, formats="all", extra=()):
    return [f"--init_checkpoint={checkpoint}", f"--bert_config_file={TINY_CONFIG}",
            f"--vocab_file={TINY_VOCAB}", "--do_lower_case=True", f"--max_seq_length={SEQ}",
            f"--export_dir={export_dir}", f"--format={formats}", "--latency_runs=5",
            "--warmup_runs=1"] + list(extra)


def _test_texts():
    with open(os.path.join(SAMPLE_DIR, "test.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    assert rows[0] == ["label", "text"]
    return [row[1] for row in rows[1:]]


def _spec(checkpoint, task="classifier", labels=("negative", "positive")):
    return inference.ExportSpec(task=task,
                                bert_config=modeling.BertConfig.from_json_file(TINY_CONFIG),
                                checkpoint=checkpoint, vocab_file=TINY_VOCAB, do_lower_case=True,
                         max_seq_length=SEQ, labels=list(labels) if task == "classifier" else None)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """run_classifier.py output_dir after a few training steps and --do_predict on test.tsv."""
    output_dir = tmp_path_factory.mktemp("finetuned")
    result = _run("run_classifier.py", [
        "--task_name=tsv", f"--data_dir={SAMPLE_DIR}", "--text_a_column=text",
        "--label_column=label", f"--bert_config_file={TINY_CONFIG}", f"--vocab_file={TINY_VOCAB}",
        f"--max_seq_length={SEQ}", f"--output_dir={output_dir}", "--do_train=true",
        "--do_predict=true", "--train_batch_size=16", "--num_train_epochs=1",
        "--learning_rate=1e-3", "--tf_random_seed=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tf.train.latest_checkpoint(str(output_dir))
    assert checkpoint and checkpoint.endswith("-15")  # int(240 / 16 * 1)
    return {"dir": output_dir, "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def exported(finetuned, tmp_path_factory):
    """The script run with every format (tftrt included: skipped on CPU)."""
    export_dir = tmp_path_factory.mktemp("export") / "model"
    result = _run("export_model.py", ["--task=classifier"]
                  + _export_args(finetuned["checkpoint"], export_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    with open(export_dir / exporting.REPORT_FILE, encoding="utf-8") as f:
        report = json.load(f)
    return {"dir": export_dir, "report": report, "result": result}


@pytest.fixture(scope="module")
def reference(finetuned):
    """The checkpoint's own outputs on the verification samples, from a fresh graph session."""
    spec = _spec(finetuned["checkpoint"])
    tokenizer = tokenization.FullTokenizer(TINY_VOCAB, do_lower_case=True)
    samples = exporting.sample_features(spec, tokenizer, num_random=8)
    model = spec.load_model()
    try:
        outputs = model.run(samples)
    finally:
        model.close()
    return {"samples": samples, "outputs": outputs, "spec": spec}


# ------------------------------------------------------------------------------------------------
# Each format, reloaded here, against the checkpoint
# ------------------------------------------------------------------------------------------------


def _loader(fmt, export_dir):
    if fmt == "saved_model":
        return inference.load_saved_model_runner(str(export_dir / "saved_model"))
    if fmt == "frozen_graph":
        return exporting.load_frozen_graph_runner(str(export_dir / "frozen_graph" / "model.pb"),
                                           ("probabilities", "logits"))
    return exporting.load_tflite_runner(str(export_dir / fmt / "model.tflite"))


@pytest.mark.parametrize("fmt,tolerance", [("saved_model", 1e-5), ("frozen_graph", 1e-5),
                                           ("tflite", 1e-5), ("tflite_fp16", 1e-2)])
def test_float_formats_match_the_checkpoint(exported, reference, fmt, tolerance):
    outputs = _loader(fmt, exported["dir"])(reference["samples"])
    for name in ("probabilities", "logits"):
        expected = reference["outputs"][name]
        assert outputs[name].shape == expected.shape == (14, 2)
        diff = np.max(np.abs(outputs[name] - expected))
        assert diff <= tolerance, (fmt, name, diff)
    entry = exported["report"]["formats"][fmt]
    assert entry["passed"] and entry["tolerance"] == tolerance
    assert entry["size_bytes"] > 0 and entry["max_diff"] <= tolerance
    assert 0 < entry["latency_ms"]["p50"] <= entry["latency_ms"]["p90"] <= entry["latency_ms"][
        "p99"]


def test_int8_agreement_and_probability_change_are_reported(exported, reference):
    outputs = _loader("tflite_int8", exported["dir"])(reference["samples"])
    change = np.max(np.abs(outputs["probabilities"] - reference["outputs"]["probabilities"]))
    agreement = np.mean(outputs["probabilities"].argmax(-1)
                        == reference["outputs"]["probabilities"].argmax(-1))
    entry = exported["report"]["formats"]["tflite_int8"]
    assert entry["max_probability_change"] == pytest.approx(change, abs=1e-6)
    assert entry["label_agreement"] == pytest.approx(agreement)
    assert change <= 0.1 and agreement >= 0.9
    # Quantisation is real: the weights shrink, the outputs move (a little).
    sizes = {fmt: exported["report"]["formats"][fmt]["size_bytes"]
             for fmt in ("tflite", "tflite_fp16", "tflite_int8")}
    assert sizes["tflite_int8"] < sizes["tflite_fp16"] < sizes["tflite"]
    assert change > 0
    assert "tflite_int8" in exported["result"].stdout  # the summary table


def test_tflite_batch_size_is_dynamic(exported, reference):
    run = _loader("tflite", exported["dir"])
    samples = reference["samples"]
    one = run(exporting.first_rows(samples, 1))["probabilities"]
    three = run(exporting.first_rows(samples, 3))["probabilities"]
    assert one.shape == (1, 2) and three.shape == (3, 2)
    np.testing.assert_allclose(three[:1], one, atol=1e-6)


def test_saved_model_cli_lists_the_signature_and_assets_are_saved(exported):
    saved_model = exported["dir"] / "saved_model"
    text = em.saved_model_cli_show(str(saved_model))
    assert "signature_def['serving_default']" in text, text[-2000:]
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert f"inputs['{name}'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, 32)" \
            in text
    for name in ("probabilities", "logits"):
        assert f"outputs['{name}'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 2)" \
            in text
    assets = saved_model / "assets"
    assert (assets / "labels.txt").read_text() == "negative\npositive\n"
    assert (assets / "vocab.txt").read_bytes() == open(TINY_VOCAB, "rb").read()
    config = json.loads((assets / "export_config.json").read_text())
    assert config["do_lower_case"] is True and config["max_seq_length"] == SEQ
    assert config["labels"] == ["negative", "positive"] and config["task"] == "classifier"


def test_frozen_graph_is_folded_pruned_and_described(exported):
    graph_def = tf1.GraphDef()
    graph_def.ParseFromString((exported["dir"] / "frozen_graph" / "model.pb").read_bytes())
    ops = {node.op for node in graph_def.node}
    assert not ops & {"VariableV2", "VarHandleOp", "ReadVariableOp", "AssignVariableOp",
                      "RestoreV2", "SaveV2"}, ops
    # The loss (one-hot labels, log-softmax) and initializers are not on the path to the outputs.
    # (The reference's seq_length <= max_position_embeddings Assert stays: it guards inference.)
    assert not ops & {"LogSoftmax", "TruncatedNormal", "Neg"}, ops
    names = {node.name for node in graph_def.node}
    assert not {name for name in names if name.startswith(("loss/one_hot", "loss/Mean"))}
    # remove_training_nodes dropped every Identity but the named outputs.
    identities = {node.name for node in graph_def.node if node.op == "Identity"}
    assert identities == {"probabilities", "logits"}, identities
    placeholders = {node.name for node in graph_def.node if node.op == "Placeholder"}
    assert placeholders == {"input_ids", "input_mask", "segment_ids"}
    io_lines = [line.split("\t") for line in
                (exported["dir"] / "frozen_graph" / "io.txt").read_text().splitlines()
                if not line.startswith("#")]
    assert io_lines == [["input", "input_ids:0", "int32", "[-1, 32]"],
                        ["input", "input_mask:0", "int32", "[-1, 32]"],
                        ["input", "segment_ids:0", "int32", "[-1, 32]"],
                        ["output", "probabilities:0", "float32", "[-1, 2]"],
                        ["output", "logits:0", "float32", "[-1, 2]"]]


def test_tftrt_is_skipped_with_its_message_on_cpu(exported):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: tftrt may really run here")
    entry = exported["report"]["formats"]["tftrt"]
    assert entry == {"skipped": "no GPU visible (TF-TRT needs a CUDA GPU and TensorRT)"}
    assert ("tftrt: skipped: no GPU visible (TF-TRT needs a CUDA GPU and TensorRT); the other "
            "formats are still written") in exported["result"].stderr
    assert not (exported["dir"] / "tftrt").exists()
    assert sorted(p.name for p in exported["dir"].iterdir()) == [
        "export_report.json", "frozen_graph", "saved_model", "tflite", "tflite_fp16",
        "tflite_int8"]


# ------------------------------------------------------------------------------------------------
# Predictor and the predict command
# ------------------------------------------------------------------------------------------------


def test_predictor_equals_run_classifier_do_predict(exported, finetuned):
    texts = _test_texts()
    expected = np.loadtxt(finetuned["dir"] / "test_results.tsv", delimiter="\t")
    predictor = inference.Predictor(str(exported["dir"] / "saved_model"), batch_size=7)
    results = predictor.predict(texts)
    probabilities = np.array([r["probabilities"] for r in results])
    assert probabilities.shape == expected.shape == (40, 2)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5, rtol=0)
    assert [r["label"] for r in results] == [
        ["negative", "positive"][i] for i in expected.argmax(-1)]
    # Loaded once, called again with other batch sizes: the same answers.
    again = predictor.predict(texts[:3])
    np.testing.assert_allclose([r["probabilities"] for r in again], probabilities[:3], atol=1e-6)
    predictor.batch_size = 64
    np.testing.assert_allclose([r["probabilities"] for r in predictor.predict(texts)],
                               probabilities, atol=1e-6)
    assert predictor.predict([]) == []


def test_predict_command_reads_stdin_and_writes_tsv(exported):
    texts = ["This film was a delight.", "这部电影太无聊了。", "Good food ||| bad service"]
    result = _run("export_model.py", [f"--predict_saved_model={exported['dir'] / 'saved_model'}",
                                      "--input_file=-"], stdin="".join(t + "\n" for t in texts))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "text\tlabel\tnegative\tpositive"
    expected = inference.Predictor(str(exported["dir"] / "saved_model")).predict(texts)
    assert len(lines) == 4
    for line, text, want in zip(lines[1:], texts, expected):
        got_text, label, *probs = line.split("\t")
        assert got_text == text and label == want["label"]
        np.testing.assert_allclose([float(p) for p in probs], want["probabilities"], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Encoder export (in-process)
# ------------------------------------------------------------------------------------------------


def test_encoder_export_from_a_classifier_checkpoint(finetuned, tmp_path):
    spec = _spec(finetuned["checkpoint"], task="encoder")
    export_dir = tmp_path / "encoder"
    report = exporting.export(spec, str(export_dir), ["saved_model", "tflite_int8"],
                              exporting.TOLERANCES, latency_runs=2, warmup_runs=1, num_random=2)
    assert report["formats"]["saved_model"]["max_abs_diff"]["sequence_output"] <= 1e-5
    assert report["formats"]["tflite_int8"]["passed"]
    texts = ["The novel was enjoyable.", "Such a lovely phone ||| we will come back"]
    vectors = inference.Predictor(str(export_dir / "saved_model")).predict(texts)
    assert vectors.shape == (2, 64)
    model = spec.load_model()
    try:
        tokenizer = tokenization.FullTokenizer(TINY_VOCAB, do_lower_case=True)
        expected = model.run(inference.texts_to_features(texts, tokenizer, SEQ))["pooled_output"]
    finally:
        model.close()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert not (export_dir / "frozen_graph").exists()
    assert not (export_dir / ".scratch").exists()


# ------------------------------------------------------------------------------------------------
# Failures: clean, one line, nothing half-written
# ------------------------------------------------------------------------------------------------


def test_corrupt_checkpoint_exits_1_and_leaves_no_export(finetuned, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.ckpt-1.index").write_bytes(os.urandom(300))
    (bad / "model.ckpt-1.data-00000-of-00001").write_bytes(os.urandom(300))
    (bad / "labels.txt").write_text("negative\npositive\n")
    export_dir = tmp_path / "out" / "model"
    result = _run("export_model.py", _export_args(bad / "model.ckpt-1", export_dir))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "cannot read checkpoint" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not export_dir.exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_failed_check_keeps_the_previous_export_and_leaves_no_temp(finetuned, tmp_path):
    export_dir = tmp_path / "model"
    export_dir.mkdir()
    (export_dir / "previous.txt").write_text("old export")
    tolerances = dict(exporting.TOLERANCES, tflite_fp16=1e-12)
    with pytest.raises(exporting.VerificationError,
                       match=r"tflite_fp16 does not match the checkpoint"):
        exporting.export(_spec(finetuned["checkpoint"]), str(export_dir),
                         ["saved_model", "tflite_fp16"], tolerances, latency_runs=1, warmup_runs=0,
                         num_random=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in export_dir.iterdir()] == ["previous.txt"]


def test_usage_errors(finetuned, tmp_path):
    checkpoint = finetuned["checkpoint"]
    with pytest.raises(cli.UsageError, match="names 3 labels but the checkpoint's classifier "
                                                 "has 2 classes"):
        classifier.resolve_export_labels("a,b,c", checkpoint, 2)
    assert classifier.resolve_export_labels(None, checkpoint, 2) == ["negative", "positive"]
    lonely = tmp_path / "x" / "model.ckpt"
    with pytest.raises(cli.UsageError, match="pass --labels="):
        classifier.resolve_export_labels(None, str(lonely), 2)
    with pytest.raises(cli.UsageError, match="directory without a checkpoint"):
        cli.resolve_checkpoint(str(tmp_path))
    assert cli.resolve_checkpoint(str(finetuned["dir"])) == checkpoint
    with pytest.raises(cli.UsageError, match="unknown format"):
        exporting.parse_formats("saved_model,onnx")
    assert exporting.parse_formats("tflite_int8,saved_model") == ["saved_model", "tflite_int8"]
    assert exporting.parse_tolerances("tflite=1e-4")["tflite"] == 1e-4
    assert cli.split_pair("A ||| B") == ("A", "B") and cli.split_pair("A|||B") == ("A|||B", None)
    # A checkpoint whose head does not fit the config: caught before any restore.
    spec = _spec(checkpoint, labels=("a", "b", "c"))
    with pytest.raises(cli.UsageError, match="output_weights has shape"):
        spec.load_model()
