"""Tests for the regression and multi-label heads and the GLUE processors of run_classifier.py.

Processors read files laid out like the official GLUE distribution; each head's metrics are checked
against a direct computation (numpy loops written here); the end-to-end runs train a 2-layer model
whose vocab covers sample_data/classifier_regression and sample_data/classifier_multilabel.
"""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import cli
import inference
import modeling
import tokenization
from tasks import classifier as rc
from tests import artifacts

tf1 = tf.compat.v1

REPO_ROOT = artifacts.REPO_ROOT
REGRESSION_DIR = os.path.join(REPO_ROOT, "sample_data", "classifier_regression")
MULTI_LABEL_DIR = os.path.join(REPO_ROOT, "sample_data", "classifier_multilabel")


def _write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(path)


def _tsv(rows):
    return "".join("\t".join(row) + "\n" for row in rows)


def _read_results(path):
    with open(path, encoding="utf-8") as f:
        return {k: float(v) for k, _, v in (line.rstrip("\n").partition(" = ") for line in f)}


def _run(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)
    return subprocess.run([sys.executable, "run_classifier.py"] + [str(a) for a in args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------
# GLUE processors on files laid out as in the official distribution
# ------------------------------------------------------------------------------------------------

GLUE_FILES = {
    "sst-2": {
        "train.tsv": [["sentence", "label"], ["a gripping film ", "1"], ["dull", "0"]],
        "dev.tsv": [["sentence", "label"], ["so good", "1"]],
        "test.tsv": [["index", "sentence"], ["0", "not bad at all"]],
    },
    "qqp": {
        "train.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                      ["1", "11", "12", "How do I cook rice?", "How to cook rice?", "1"],
                      ["2", "13", "14", "What is AI?"],  # a row with fields missing
                      ["3", "15", "16", "Why?", "Where?", "0"]],
        "dev.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                    ["4", "17", "18", "Is it?", "It is?", "1"]],
        "test.tsv": [["id", "question1", "question2"], ["0", "Who?", "Whom?"]],
    },
    "qnli": {
        "train.tsv": [["index", "question", "sentence", "label"],
                      ["0", "Who wrote it?", "It was written by Ann.", "entailment"]],
        "dev.tsv": [["index", "question", "sentence", "label"],
                    ["0", "When?", "Blue is a colour.", "not_entailment"]],
        "test.tsv": [["index", "question", "sentence"], ["0", "Why?", "Because."]],
    },
    "rte": {
        "train.tsv": [["index", "sentence1", "sentence2", "label"],
                      ["0", "A man sleeps.", "A person rests.", "entailment"]],
        "dev.tsv": [["index", "sentence1", "sentence2", "label"],
                    ["0", "It rains.", "It is dry.", "not_entailment"]],
        "test.tsv": [["index", "sentence1", "sentence2"], ["0", "X.", "Y."]],
    },
    "wnli": {
        "train.tsv": [["index", "sentence1", "sentence2", "label"],
                      ["0", "The cup fell because it was light.", "The cup was light.", "1"]],
        "dev.tsv": [["index", "sentence1", "sentence2", "label"], ["0", "A.", "B.", "0"]],
        "test.tsv": [["index", "sentence1", "sentence2"], ["0", "C.", "D."]],
    },
    "sts-b": {
        "train.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                       "sentence1", "sentence2", "score"],
                      ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
                       "A plane is taking off.", "An air plane is taking off.", "5.000"]],
        "dev.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                     "sentence1", "sentence2", "score"],
                    ["0", "main-news", "headlines", "2015", "0", "none", "none", "A.", "B.",
                     "1.25"]],
        "test.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                      "sentence1", "sentence2"],
                     ["0", "main-news", "headlines", "2016", "0", "none", "none", "C.", "D."]],
    },
}


@pytest.mark.parametrize("task", sorted(GLUE_FILES))
def test_glue_processor_reads_the_official_columns(task, tmp_path):
    for name, rows in GLUE_FILES[task].items():
        _write(tmp_path / name, _tsv(rows))
    processor = rc.create_processor(task)
    train = processor.get_train_examples(str(tmp_path))
    dev = processor.get_dev_examples(str(tmp_path))
    test = processor.get_test_examples(str(tmp_path))
    texts = {"sst-2": ("a gripping film ", None, "1"),
             "qqp": ("How do I cook rice?", "How to cook rice?", "1"),
             "qnli": ("Who wrote it?", "It was written by Ann.", "entailment"),
             "rte": ("A man sleeps.", "A person rests.", "entailment"),
             "wnli": ("The cup fell because it was light.", "The cup was light.", "1"),
             "sts-b": ("A plane is taking off.", "An air plane is taking off.", 5.0)}[task]
    assert (train[0].text_a, train[0].text_b, train[0].label) == texts
    assert train[0].guid == "train-2" and len(dev) == 1 and len(test) == 1
    # Test files have no label: a dummy one, as the reference's processors do.
    assert test[0].label == (0.0 if task == "sts-b" else processor.get_labels()[0])
    assert test[0].text_a == {"sst-2": "not bad at all", "qqp": "Who?", "qnli": "Why?",
                              "rte": "X.", "wnli": "C.", "sts-b": "C."}[task]
    if task == "qqp":
        assert [e.guid for e in train] == ["train-2", "train-4"]  # the short row is skipped
    assert processor.task_type == ("regression" if task == "sts-b" else "classification")
    assert rc.PROCESSORS.get(task.replace("-", "")) is type(processor)  # sst2, stsb aliases


def test_glue_processor_errors_name_file_and_line(tmp_path):
    _write(tmp_path / "train.tsv", _tsv([["sentence", "label"], ["fine", "1"], ["bad", "2"]]))
    with pytest.raises(cli.UsageError, match=r"train.tsv, line 3: label '2' is not one of"):
        rc.create_processor("sst-2").get_train_examples(str(tmp_path))
    _write(tmp_path / "train.tsv", _tsv(GLUE_FILES["sts-b"]["train.tsv"][:1] + [
        ["0", "g", "f", "y", "o", "s", "s", "A.", "B.", "high"]]))
    with pytest.raises(cli.UsageError, match=r"train.tsv, line 2: regression target 'high' is "
                                             r"not a number"):
        rc.create_processor("sts-b").get_train_examples(str(tmp_path))
    _write(tmp_path / "train.tsv", _tsv([["text", "label"], ["a", "1"]]))
    with pytest.raises(cli.UsageError, match=r"train.tsv, line 1: no column 'sentence'"):
        rc.create_processor("sst-2").get_train_examples(str(tmp_path))
    with pytest.raises(cli.UsageError, match=r"task sts-b is a regression task; drop "
                                             r"--task_type=multi_label"):
        rc.create_processor("sts-b", task_type="multi_label")


# ------------------------------------------------------------------------------------------------
# Generic processors with the new task types
# ------------------------------------------------------------------------------------------------


def test_regression_and_multi_label_generic_processors(tmp_path):
    processor = rc.create_processor("tsv", data_dir=REGRESSION_DIR, text_a_column="sentence1",
                                    text_b_column="sentence2", label_column="score",
                                    task_type="regression")
    train = processor.get_train_examples(REGRESSION_DIR)
    assert processor.get_labels() == [] and train[0].label == 4.8 and train[0].text_b
    processor = rc.create_processor("tsv", data_dir=MULTI_LABEL_DIR, text_a_column="text",
                                    label_column="labels", task_type="multi_label")
    assert processor.get_labels() == ["delivery", "price", "quality", "service"]
    train = processor.get_train_examples(MULTI_LABEL_DIR)
    assert train[0].label == ["delivery", "quality"]
    # Index columns and auto header detection see a multi-label cell as a label, not a header.
    _write(tmp_path / "train.tsv", _tsv([["a|b", "x"], ["b", "y"], ["", "z"]]))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), task_type="multi_label",
                                    label_separator="|")
    examples = processor.get_train_examples(str(tmp_path))
    assert processor.get_labels() == ["a", "b"]
    assert [e.label for e in examples] == [["a", "b"], ["b"], []]
    jsonl = tmp_path / "j"
    _write(jsonl / "train.jsonl", json.dumps({"text": "t", "label": ["b", "a"]}) + "\n" +
           json.dumps({"text": "u", "label": "a"}) + "\n")
    processor = rc.create_processor("jsonl", data_dir=str(jsonl), task_type="multi_label")
    assert [e.label for e in processor.get_train_examples(str(jsonl))] == [["b", "a"], ["a"]]


def test_bad_targets_and_labels_name_file_and_line(tmp_path):
    _write(tmp_path / "train.tsv", _tsv([["score", "text"], ["0.5", "a"], ["n/a", "b"]]))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), task_type="regression",
                                    text_a_column="text", label_column="score")
    with pytest.raises(cli.UsageError, match=r"train.tsv, line 3: regression target 'n/a' is not "
                                             r"a number"):
        processor.get_train_examples(str(tmp_path))
    _write(tmp_path / "dev.tsv", _tsv([["labels", "text"], ["a,c", "t"]]))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), task_type="multi_label",
                                    text_a_column="text", label_column="labels", labels=["a", "b"])
    with pytest.raises(cli.UsageError, match=r"dev.tsv, line 2: label 'c' of 'a,c' is not in the "
                                             r"label list \['a', 'b'\]"):
        processor.get_dev_examples(str(tmp_path))


def test_head_options_validation():
    assert rc.head_options("multi_label", "|", "0.3", 4).threshold_values(4).tolist() == \
        pytest.approx([0.3] * 4)
    assert rc.head_options("multi_label", ",", "0.1,0.2", 2).thresholds == (0.1, 0.2)
    with pytest.raises(cli.UsageError, match="one per label"):
        rc.head_options("multi_label", ",", "0.1,0.2,0.3", 2)
    with pytest.raises(cli.UsageError, match="between 0 and 1"):
        rc.head_options("multi_label", ",", "1.5", 2)
    with pytest.raises(cli.UsageError, match="between 0 and 1"):
        rc.head_options("multi_label", ",", "high", 2)


# ------------------------------------------------------------------------------------------------
# Metrics against direct computation
# ------------------------------------------------------------------------------------------------


def _pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5


def _ranks(values):
    """Average ranks by counting: rank = 1 + #smaller + (#equal - 1) / 2."""
    return [1 + sum(v < x for v in values) + (sum(v == x for v in values) - 1) / 2
            for x in values]


def _run_metric_fn(metric_fn, batches):
    """Runs a metric_fn over batches of numpy inputs; returns the final metric values."""
    with tf.Graph().as_default():
        placeholders = [tf1.placeholder(tf.as_dtype(a.dtype), [None] + list(a.shape[1:]))
                        for a in batches[0]]
        metrics = metric_fn(*placeholders)
        with tf1.Session() as sess:
            sess.run(tf1.local_variables_initializer())
            for batch in batches:
                sess.run([update for _, update in metrics.values()],
                         dict(zip(placeholders, batch)))
            return sess.run({name: value for name, (value, _) in metrics.items()})


def test_regression_metrics_equal_direct_pearson_and_spearman():
    rng = np.random.RandomState(0)
    targets = np.round(rng.uniform(0, 5, 40), 1).astype(np.float32)  # rounded: ties
    predictions = (targets + rng.normal(0, 1.5, 40)).astype(np.float32)
    predictions[:4] = predictions[4]  # ties among the predictions too
    real = np.ones(40, np.int32)
    real[-3:] = 0  # TPU padding examples: not counted
    losses = (predictions - targets) ** 2
    batches = [(losses[i:i + 8], targets[i:i + 8, None], predictions[i:i + 8, None], real[i:i + 8])
               for i in range(0, 40, 8)]
    result = _run_metric_fn(rc.metric_fn_builder(0, rc.HeadOptions("regression")), batches)
    p, t = list(map(float, predictions[:37])), list(map(float, targets[:37]))
    assert result["eval_pearson"] == pytest.approx(_pearson(p, t), abs=1e-5)
    assert result["eval_spearman"] == pytest.approx(_pearson(_ranks(p), _ranks(t)), abs=1e-5)
    assert result["eval_loss"] == pytest.approx(float(losses[:37].mean()), rel=1e-5)
    assert rc.correlations([1.0, 1.0], [1.0, 2.0]) == {"pearson": 0.0, "spearman": 0.0}


def test_multi_label_metrics_equal_direct_counts():
    rng = np.random.RandomState(1)
    num_labels, n = 4, 30
    gold = (rng.rand(n, num_labels) < 0.35).astype(np.float32)
    logits = (rng.normal(0, 2, [n, num_labels]) + 2.5 * (gold - 0.5)).astype(np.float32)
    logits[:, 3] = -9.0  # label 3 never predicted ...
    gold[:, 3] = 0.0  # ... and never gold: it must not count in the macro averages
    thresholds = (0.5, 0.3, 0.7, 0.5)
    real = np.ones(n, np.int32)
    real[-2:] = 0
    losses = np.zeros(n, np.float32)
    batches = [(losses[i:i + 7], gold[i:i + 7], logits[i:i + 7], real[i:i + 7])
               for i in range(0, n, 7)]
    head = rc.HeadOptions("multi_label", ",", thresholds)
    result = _run_metric_fn(rc.metric_fn_builder(num_labels, head), batches)
    predicted = (1 / (1 + np.exp(-logits)) >= np.array(thresholds)).astype(np.float32)
    g, p = gold[:n - 2], predicted[:n - 2]
    tp, fp, fn = [[float(((p[:, j] == a) & (g[:, j] == b)).sum()) for j in range(num_labels)]
                  for a, b in ((1, 1), (1, 0), (0, 1))]

    def f1(t, f_p, f_n):
        precision = t / (t + f_p) if t + f_p else 0.0
        recall = t / (t + f_n) if t + f_n else 0.0
        return precision, recall, (2 * precision * recall / (precision + recall)
                                   if precision + recall else 0.0)

    micro = f1(sum(tp), sum(fp), sum(fn))
    per_label = [f1(tp[j], fp[j], fn[j]) for j in range(3)]  # labels 0-2 occur
    macro = [sum(v[k] for v in per_label) / 3 for k in range(3)]
    for kind, values in (("micro", micro), ("macro", macro)):
        for name, value in zip(("precision", "recall", "f1"), values):
            assert result[f"eval_{kind}_{name}"] == pytest.approx(value, abs=1e-6)
    assert result["eval_subset_accuracy"] == pytest.approx(float((g == p).all(1).mean()))
    assert set(result) | {"global_step", "loss"} == set(rc.eval_metric_names(4, head))


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------

TINY = modeling.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16, max_position_embeddings=16)


@pytest.mark.parametrize("task_type", rc.TASK_TYPES)
def test_heads_losses_and_variable_names(task_type):
    rng = np.random.RandomState(2)
    ids = rng.randint(1, 50, [5, 8]).astype(np.int32)
    labels = {"classification": rng.randint(0, 3, [5]).astype(np.int32),
              "regression": rng.uniform(0, 5, [5, 1]).astype(np.float32),
              "multi_label": (rng.rand(5, 3) < 0.5).astype(np.float32)}[task_type]
    with tf.Graph().as_default():
        outputs = rc.create_model(TINY, False, tf.constant(ids), tf.ones_like(ids),
                                  tf.zeros_like(ids), tf.constant(labels), 3, False, task_type)
        shapes = {v.op.name: v.shape.as_list() for v in tf1.global_variables()
                  if not v.op.name.startswith("bert/")}
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            out = sess.run({k: v for k, v in outputs._asdict().items() if v is not None})
    width = 1 if task_type == "regression" else 3
    assert shapes == {"output_weights": [width, 16], "output_bias": [width]}
    logits = out["logits"].astype(np.float64)
    if task_type == "regression":
        expected = (logits[:, 0] - labels[:, 0]) ** 2
    elif task_type == "multi_label":
        expected = np.mean(np.maximum(logits, 0) - logits * labels
                           + np.log1p(np.exp(-np.abs(logits))), axis=1)
        np.testing.assert_allclose(out["probabilities"], 1 / (1 + np.exp(-logits)), rtol=1e-5)
    else:
        log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        expected = -log_probs[np.arange(5), labels]
    np.testing.assert_allclose(out["per_example_loss"], expected, rtol=1e-5, atol=1e-6)
    assert out["loss"] == pytest.approx(expected.mean(), rel=1e-5)


def test_classification_files_and_caches_are_unchanged(tmp_path, english_vocab):
    """The default head writes the reference's TFRecord fields and the same cache fingerprint."""
    examples = [rc.InputExample("a", "good", None, "1"), rc.PaddingInputExample()]
    tokenizer = tokenization.FullTokenizer(english_vocab)
    path = str(tmp_path / "c.tf_record")
    rc.file_based_convert_examples_to_features(examples, ["0", "1"], 8, tokenizer, path)
    record = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(path))).numpy())
    assert sorted(record.features.feature) == ["input_ids", "input_mask", "is_real_example",
                                               "label_ids", "segment_ids"]
    fingerprint = rc.features_fingerprint(examples, ["0", "1"], 8, english_vocab, True)
    assert "task_type" not in fingerprint
    assert rc.features_fingerprint(examples, [], 8, english_vocab, True,
                                   rc.HeadOptions("regression"))["task_type"] == "regression"


# ------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, hidden-32 config and a vocab holding every basic token of both samples."""
    directory = tmp_path_factory.mktemp("tiny_heads_model")
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    tokens = set()
    for sample in (REGRESSION_DIR, MULTI_LABEL_DIR):
        for split in ("train", "dev", "test"):
            with open(os.path.join(sample, f"{split}.tsv"), encoding="utf-8") as f:
                for line in f:
                    tokens.update(basic.tokenize(line))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(tokens)
    vocab_file = _write(directory / "vocab.txt", "".join(t + "\n" for t in vocab))
    config = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
              "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}
    config_file = _write(directory / "bert_config.json", json.dumps(config))
    return [f"--vocab_file={vocab_file}", f"--bert_config_file={config_file}",
            "--max_seq_length=48"]


def test_regression_end_to_end(tiny_model, tmp_path):
    out = tmp_path / "reg"
    result = _run(tiny_model + [
        "--task_name=tsv", "--task_type=regression", f"--data_dir={REGRESSION_DIR}",
        "--text_a_column=sentence1", "--text_b_column=sentence2", "--label_column=score",
        f"--output_dir={out}", "--do_train", "--do_eval", "--do_predict", "--do_export",
        "--train_batch_size=8", "--num_train_epochs=2", "--learning_rate=1e-3",
        "--save_checkpoints_steps=6", "--max_steps_without_decrease=200",
        "--early_stopping_metric=eval_pearson", "--tf_random_seed=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    results = _read_results(out / "eval_results.txt")
    assert set(results) == set(rc.eval_metric_names(0, rc.HeadOptions("regression")))
    assert all(np.isfinite(list(results.values())))
    assert -1 <= results["eval_pearson"] <= 1 and -1 <= results["eval_spearman"] <= 1
    scores = [float(line) for line in open(out / "test_results.tsv")]
    header, *rows = open(out / "test_predictions.tsv").read().splitlines()
    assert header == "guid\tprediction" and len(rows) == len(scores) == 10
    predictor = inference.load_predictor(str(out / "export" / "saved_model"))
    assert isinstance(predictor, rc.RegressionPredictor)
    test = rc.create_processor("tsv", data_dir=REGRESSION_DIR, text_a_column="sentence1",
                               text_b_column="sentence2", label_column="score",
                               task_type="regression").get_test_examples(REGRESSION_DIR)
    served = predictor.predict([(e.text_a, e.text_b) for e in test])
    np.testing.assert_allclose([r["score"] for r in served], scores, rtol=1e-4, atol=1e-4)


def test_multi_label_end_to_end(tiny_model, tmp_path):
    out = tmp_path / "ml"
    result = _run(tiny_model + [
        "--task_name=tsv", "--task_type=multi_label", f"--data_dir={MULTI_LABEL_DIR}",
        "--text_a_column=text", "--label_column=labels", f"--output_dir={out}", "--do_train",
        "--do_eval", "--do_predict", "--do_export", "--train_batch_size=8",
        "--num_train_epochs=2", "--learning_rate=2e-3", "--multi_label_threshold=0.5",
        "--tf_random_seed=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    labels = ["delivery", "price", "quality", "service"]
    assert open(out / "labels.txt").read().split() == labels
    results = _read_results(out / "eval_results.txt")
    assert set(results) == set(rc.eval_metric_names(4, rc.HeadOptions("multi_label")))
    assert all(0 <= value <= 1 for key, value in results.items() if key.startswith("eval_")
               and key != "eval_loss")
    header, *rows = open(out / "test_predictions.tsv").read().splitlines()
    assert header.split("\t") == ["guid", "prediction"] + labels
    for row in rows:
        cells = row.split("\t")
        chosen = [label for label, p in zip(labels, map(float, cells[2:])) if p >= 0.5]
        assert cells[1] == ",".join(chosen)
    predictor = inference.load_predictor(str(out / "export" / "saved_model"))
    [served] = predictor.predict(["Shipping was fast."])
    assert served["labels"] == [label for label, p in zip(labels, served["probabilities"])
                                if p >= 0.5]


def test_sts_b_runs_as_regression_by_itself(tiny_model, tmp_path):
    """--task_name=sts-b on files in the official layout: regression without --task_type."""
    header = GLUE_FILES["sts-b"]["train.tsv"][0]
    for split in ("train", "dev", "test"):
        with open(os.path.join(REGRESSION_DIR, f"{split}.tsv"), encoding="utf-8") as f:
            pairs = [line.rstrip("\n").split("\t") for line in f][1:]
        rows = [[str(i), "main-captions", "sample", "2024", str(i), "none", "none", a, b]
                + ([score] if split != "test" else []) for i, (a, b, score) in enumerate(pairs)]
        _write(tmp_path / "STS-B" / f"{split}.tsv",
               _tsv([header if split != "test" else header[:-1]] + rows))
    out = tmp_path / "out"
    result = _run(tiny_model + ["--task_name=STS-B", f"--data_dir={tmp_path / 'STS-B'}",
                                f"--output_dir={out}", "--do_train", "--do_eval", "--do_predict",
                                "--train_batch_size=8", "--num_train_epochs=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(_read_results(out / "eval_results.txt")) == \
        set(rc.eval_metric_names(0, rc.HeadOptions("regression")))
    assert len(open(out / "test_results.tsv").read().splitlines()) == 10
    refused = _run(tiny_model + ["--task_name=sts-b", "--task_type=classification",
                                 f"--data_dir={tmp_path / 'STS-B'}", f"--output_dir={out}",
                                 "--do_eval"])
    assert refused.returncode == 1
    assert "task sts-b is a regression task; drop --task_type=classification" in refused.stderr


def test_bad_input_in_runs_is_one_line(tiny_model, tmp_path):
    _write(tmp_path / "d" / "train.tsv", _tsv([["labels", "text"], ["price", "a"],
                                               ["price;quality", "b"]]))
    result = _run(tiny_model + ["--task_name=tsv", "--task_type=multi_label",
                                "--text_a_column=text", "--label_column=labels",
                                f"--data_dir={tmp_path / 'd'}", f"--output_dir={tmp_path / 'o'}",
                                "--do_train", "--labels=price,quality"])
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    assert "train.tsv, line 3: label 'price;quality' of 'price;quality' is not in the label " \
           "list" in line and "--label_separator" in line


# ------------------------------------------------------------------------------------------------
# Learning: the real all-MiniLM-L6-v2 on the two samples
# ------------------------------------------------------------------------------------------------

def _minilm_flags(minilm_tf):
    return [f"--vocab_file={minilm_tf}/vocab.txt",
            f"--bert_config_file={minilm_tf}/bert_config.json",
            f"--init_checkpoint={minilm_tf}/bert_model.ckpt", "--train_batch_size=8",
            "--num_train_epochs=5", "--tf_random_seed=1", "--do_train", "--do_eval"]


@pytest.mark.slow
def test_minilm_learns_multi_label_and_regression(minilm_tf, tmp_path):
    """Both heads train on all-MiniLM-L6-v2: multi_label on the bundled sample, far above
    predicting every label; regression on real movie-review snippets (score 1.0 positive, 0.0
    negative), correlated with the held-out scores far beyond chance."""
    result = _run(_minilm_flags(minilm_tf) + [
        "--task_name=tsv", "--task_type=multi_label", f"--data_dir={MULTI_LABEL_DIR}",
        "--text_a_column=text", "--label_column=labels", f"--output_dir={tmp_path / 'ml'}",
        "--max_seq_length=48", "--learning_rate=1e-4"], timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    multi_label = _read_results(tmp_path / "ml" / "eval_results.txt")
    dev = rc.create_processor("tsv", data_dir=MULTI_LABEL_DIR, text_a_column="text",
                              label_column="labels", task_type="multi_label")
    examples = dev.get_dev_examples(MULTI_LABEL_DIR)
    share = sum(len(e.label) for e in examples) / (4 * len(examples))
    all_labels_f1 = 2 * share / (share + 1)  # precision = share, recall = 1

    reviews = artifacts.movie_reviews()
    random.Random(0).shuffle(reviews)
    for split, part in (("train", reviews[:150]), ("dev", reviews[150:])):
        _write(tmp_path / "movies" / f"{split}.tsv", _tsv(
            [["score", "text"]] + [["1.0" if label == "pos" else "0.0", text]
                                   for label, text in part]))
    result = _run(_minilm_flags(minilm_tf) + [
        "--task_name=tsv", "--task_type=regression", f"--data_dir={tmp_path / 'movies'}",
        "--text_a_column=text", "--label_column=score", f"--output_dir={tmp_path / 'reg'}",
        "--max_seq_length=64", "--learning_rate=5e-5"], timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    regression = _read_results(tmp_path / "reg" / "eval_results.txt")
    print(f"multi_label: micro F1 {multi_label['eval_micro_f1']:.4f}, subset accuracy "
          f"{multi_label['eval_subset_accuracy']:.4f} (every label: micro F1 {all_labels_f1:.4f});"
          f" regression: Pearson {regression['eval_pearson']:.4f}, Spearman "
          f"{regression['eval_spearman']:.4f}")
    assert multi_label["eval_micro_f1"] > all_labels_f1 + 0.15
    # Chance correlations over 50 held-out reviews have a standard deviation of about 0.14.
    assert regression["eval_pearson"] > 0.3 and regression["eval_spearman"] > 0.3
