"""Tests for run_classifier.py: processors, feature conversion, metrics and end-to-end runs.

Fast tests call the module's functions in-process; the end-to-end tests run the script as a
subprocess on a tiny model (vocab built from sample_data/classifier) and, marked slow, fine-tune the
real all-MiniLM-L6-v2 (converted with convert_checkpoint.py) on gensim's movie-review snippets.
"""

import json
import math
import os
import random
import subprocess
import sys

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
SAMPLE_DIR = os.path.join(REPO_ROOT, "sample_data", "classifier")
PLUGIN = os.path.join(REPO_ROOT, "sample_data", "plugin_processor_example.py")


def _write(path, text, encoding="utf-8"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return path


def _tsv(rows):
    return "".join("\t".join(row) + "\n" for row in rows)


def _read_results(path):
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition(" = ")
            results[key] = float(value)
    return results


def _script_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)  # It would turn the one-line errors into tracebacks.
    return env


def _run_script(args, timeout=300):
    return subprocess.run([sys.executable, "run_classifier.py"] + args, cwd=REPO_ROOT,
                          env=_script_env(), capture_output=True, text=True, timeout=timeout)


def _run_scripts_in_parallel(arg_lists, timeout=300):
    """Runs several short script invocations at once; returns CompletedProcess objects."""
    processes = [subprocess.Popen([sys.executable, "run_classifier.py"] + args, cwd=REPO_ROOT,
                                  env=_script_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for args in arg_lists]
    results = []
    for process, args in zip(processes, arg_lists):
        stdout, stderr = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, hidden-32 config and a vocab holding every basic token of the sample task."""
    directory = tmp_path_factory.mktemp("tiny_model")
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    tokens = set()
    for split in ("train", "dev", "test"):
        with open(os.path.join(SAMPLE_DIR, f"{split}.tsv"), encoding="utf-8") as f:
            for line in f:
                tokens.update(basic.tokenize(line))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(tokens)
    vocab_file = _write(str(directory / "vocab.txt"), "".join(t + "\n" for t in vocab))
    config = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 32,
              "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}
    config_file = _write(str(directory / "bert_config.json"), json.dumps(config))
    return {"vocab_file": vocab_file, "bert_config_file": config_file}


def _model_flags(tiny_model):
    return [f"--vocab_file={tiny_model['vocab_file']}",
            f"--bert_config_file={tiny_model['bert_config_file']}", "--max_seq_length=32"]


# ------------------------------------------------------------------------------------------------
# Reference processors on GLUE/XNLI-shaped files
# ------------------------------------------------------------------------------------------------


def test_mrpc_processor(tmp_path):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    _write(str(tmp_path / "train.tsv"), _tsv([
        header, ["1", "11", "12", "He said hi .", "He greeted ."],
        ["0", "13", "14", "A \"quoted\" cat", "A dog"]]))
    _write(str(tmp_path / "dev.tsv"), _tsv([header, ["0", "1", "2", "Dev a", "Dev b"]]))
    _write(str(tmp_path / "test.tsv"),
           _tsv([["index"] + header[1:], ["0", "1", "2", "T a", "T b"]]))
    processor = rc.PROCESSORS["mrpc"]()
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-1", "He said hi .", "He greeted .", "1"),
        # Quoting is off as in the reference: quote characters stay in the text.
        ("train-2", "A \"quoted\" cat", "A dog", "0")]
    dev = processor.get_dev_examples(str(tmp_path))
    assert [(e.guid, e.label) for e in dev] == [("dev-1", "0")]
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in test] == [("test-1", "T a", "T b", "0")]
    assert processor.get_labels() == ["0", "1"]


def test_cola_processor_header_only_in_test(tmp_path):
    _write(str(tmp_path / "train.tsv"), _tsv([["gj04", "1", "", "Our friends won't buy it ."],
                                              ["gj04", "0", "*", "They drank the pub ."]]))
    _write(str(tmp_path / "dev.tsv"), _tsv([["gj04", "1", "", "Dev sentence ."]]))
    _write(str(tmp_path / "test.tsv"), _tsv([["index", "sentence"], ["0", "Test sentence ."]]))
    processor = rc.PROCESSORS["cola"]()
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-0", "Our friends won't buy it .", None, "1"),
        ("train-1", "They drank the pub .", None, "0")]
    dev = processor.get_dev_examples(str(tmp_path))
    assert [(e.guid, e.label) for e in dev] == [("dev-0", "1")]
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.label) for e in test] == [("test-1", "Test sentence .", "0")]


def test_mnli_processor(tmp_path):
    header = ["index", "promptID", "pairID", "genre", "s1_bp", "s2_bp", "s1_p", "s2_p",
              "sentence1", "sentence2"]
    _write(str(tmp_path / "train.tsv"), _tsv([header + ["label1", "gold_label"],
                                              ["7", "p", "q", "g", "", "", "", "", "Prem .",
                                               "Hyp .", "neutral", "entailment"]]))
    _write(str(tmp_path / "dev_matched.tsv"), _tsv([
        header + ["label1", "label2", "gold_label"],
        ["9", "p", "q", "g", "", "", "", "", "D1", "D2", "neutral", "neutral", "contradiction"]]))
    _write(str(tmp_path / "test_matched.tsv"), _tsv([header, ["3", "p", "q", "g", "", "", "", "",
                                                              "T1", "T2"]]))
    processor = rc.PROCESSORS["mnli"]()
    train = processor.get_train_examples(str(tmp_path))
    # The label is the last column; the guid uses the index column.
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-7", "Prem .", "Hyp .", "entailment")]
    dev = processor.get_dev_examples(str(tmp_path))
    assert [(e.guid, e.label) for e in dev] == [("dev_matched-9", "contradiction")]
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.label) for e in test] == [("test-3", "T1", "contradiction")]


def test_xnli_processor(tmp_path):
    _write(str(tmp_path / "multinli" / "multinli.train.zh.tsv"), _tsv([
        ["premise", "hypo", "label"], ["他说。", "他没说。", "contradictory"],
        ["我来了。", "我在。", "entailment"]]))
    dev_header = ["language", "gold_label", "s1_bp", "s2_bp", "s1_p", "s2_p", "sentence1",
                  "sentence2"]
    _write(str(tmp_path / "xnli.dev.tsv"), _tsv([
        dev_header, ["en", "neutral", "", "", "", "", "E1", "E2"],
        ["zh", "neutral", "", "", "", "", "中一", "中二"]]))
    processor = rc.PROCESSORS["xnli"]()
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-1", "他说。", "他没说。", "contradiction"),
        ("train-2", "我来了。", "我在。", "entailment")]
    dev = processor.get_dev_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in dev] == [
        ("dev-2", "中一", "中二", "neutral")]
    with pytest.raises(NotImplementedError):
        processor.get_test_examples(str(tmp_path))


# ------------------------------------------------------------------------------------------------
# Feature conversion
# ------------------------------------------------------------------------------------------------


def test_truncate_seq_pair_pops_from_the_longer_and_from_b_on_ties():
    a, b = list("abcdef"), list("xy")
    rc._truncate_seq_pair(a, b, 5)
    assert (a, b) == (list("abc"), list("xy"))
    a, b = list("abcde"), list("vwxyz")
    rc._truncate_seq_pair(a, b, 7)
    # Ties pop from b first: 5/5 -> 5/4 -> 4/4 -> 4/3.
    assert (a, b) == (list("abcd"), list("vwx"))


def test_convert_single_example_pair_single_and_padding(english_vocab):
    tokenizer = tokenization.FullTokenizer(english_vocab, do_lower_case=True)
    labels = ["neg", "pos"]
    example = rc.InputExample("g", "the cat sat on the mat today", "a dog barked", "pos")
    feature = rc.convert_single_example(0, example, labels, 10, tokenizer)
    # 7 + 3 tokens into 10 - 3 = 7 slots: a loses 3 (it stays the longer one until 4 vs 3).
    expected = ["[CLS]", "the", "cat", "sat", "on", "[SEP]", "a", "dog", "barked", "[SEP]"]
    assert feature.input_ids == tokenizer.convert_tokens_to_ids(expected)
    assert feature.segment_ids == [0] * 6 + [1] * 4
    assert feature.input_mask == [1] * 10
    assert feature.label_id == 1 and feature.is_real_example

    single = rc.convert_single_example(
        0, rc.InputExample("s", "hello world", None, "neg"), labels, 6, tokenizer)
    assert single.input_ids == tokenizer.convert_tokens_to_ids(
        ["[CLS]", "hello", "world", "[SEP]"]) + [0, 0]
    assert single.input_mask == [1, 1, 1, 1, 0, 0]
    assert single.segment_ids == [0] * 6
    cut = rc.convert_single_example(
        0, rc.InputExample("s", "one two three four five", None, "neg"), labels, 5, tokenizer)
    assert cut.input_ids == tokenizer.convert_tokens_to_ids(
        ["[CLS]", "one", "two", "three", "[SEP]"])

    padding = rc.convert_single_example(0, rc.PaddingInputExample(), labels, 4, tokenizer)
    assert (padding.input_ids, padding.input_mask, padding.segment_ids) == ([0] * 4,) * 3
    assert padding.label_id == 0 and padding.is_real_example is False


def test_train_steps_match_the_reference():
    # MRPC: 3668 examples, batch 32, 3 epochs -> 343 steps (README global_step = 343).
    assert rc.compute_train_steps(3668, 32, 3.0, 0.1) == (343, 34)


def test_tf_record_cache_is_reused_until_an_input_changes(tmp_path, english_vocab):
    tokenizer = tokenization.FullTokenizer(english_vocab, do_lower_case=True)
    labels = ["neg", "pos"]
    examples = [rc.InputExample(f"t-{i}", f"sentence number {i}", None, labels[i % 2])
                for i in range(5)]
    path = str(tmp_path / "train.tf_record")

    def fingerprint(exs, max_seq_length=16):
        return rc.features_fingerprint(exs, labels, max_seq_length, english_vocab, True)

    assert not rc.write_or_reuse_tf_record(examples, labels, 16, tokenizer, path,
                                           fingerprint(examples))
    assert rc.write_or_reuse_tf_record(examples, labels, 16, tokenizer, path,
                                       fingerprint(examples))
    assert not rc.write_or_reuse_tf_record(examples, labels, 12, tokenizer, path,
                                           fingerprint(examples, 12))
    changed = examples[:4] + [rc.InputExample("t-4", "another text", None, "pos")]
    assert fingerprint(changed, 12) != fingerprint(examples, 12)
    assert not rc.write_or_reuse_tf_record(changed, labels, 12, tokenizer, path,
                                           fingerprint(changed, 12))
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    parsed = tf.train.Example.FromString(records[-1]).features.feature
    assert len(records) == 5 and len(parsed["input_ids"].int64_list.value) == 12
    assert parsed["label_ids"].int64_list.value == [1]
    assert parsed["is_real_example"].int64_list.value == [1]


# ------------------------------------------------------------------------------------------------
# Generic processors, header detection, labels, plugins
# ------------------------------------------------------------------------------------------------


def test_tsv_processor_reads_the_sample_task():
    processor = rc.create_processor("tsv", data_dir=SAMPLE_DIR)
    assert processor.get_labels() == ["negative", "positive"]
    train = processor.get_train_examples(SAMPLE_DIR)
    # The header `label<TAB>text` is detected: "label" is no label and occurs only once.
    assert len(train) == 240 and train[0].guid == "train-2"
    assert len(processor.get_dev_examples(SAMPLE_DIR)) == 60
    assert len(processor.get_test_examples(SAMPLE_DIR)) == 40
    by_name = rc.create_processor("TSV", data_dir=SAMPLE_DIR, text_a_column="text",
                                  label_column="label")
    named = by_name.get_train_examples(SAMPLE_DIR)
    assert [(e.text_a, e.label) for e in named] == [(e.text_a, e.label) for e in train]
    assert any("\u4e00" <= ch <= "\u9fff" for e in train for ch in e.text_a)


def test_tsv_pair_task_without_header_and_numeric_labels(tmp_path):
    rows = [["2", "a b", "c"], ["10", "d", "e f"], ["1", "g", "h"], ["2", "i", "j"]]
    _write(str(tmp_path / "train.tsv"), _tsv(rows))
    _write(str(tmp_path / "dev.tsv"), _tsv([["10", "x", "y"]]))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), text_b_column="2")
    # Integer labels sort numerically; the first row is data since "2" occurs again.
    assert processor.get_labels() == ["1", "2", "10"]
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train][0] == ("train-1", "a b", "c", "2")
    assert len(train) == 4
    assert [e.label for e in processor.get_dev_examples(str(tmp_path))] == ["10"]


def test_csv_processor_with_quotes_header_names_and_multiline_fields(tmp_path):
    _write(str(tmp_path / "train.csv"),
           'id,review,summary,stars\n1,"Good, really good","fine",pos\n'
           '2,"two\nlines",short,neg\n3,plain,"say ""hi""",pos\n')
    _write(str(tmp_path / "validation.csv"), "id,review,summary,stars\n9,ok,ok,good\n")
    processor = rc.create_processor("csv", data_dir=str(tmp_path), text_a_column="review",
                                    text_b_column="summary", label_column="stars")
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
        ("train-2", "Good, really good", "fine", "pos"), ("train-3", "two\nlines", "short", "neg"),
        ("train-5", "plain", 'say "hi"', "pos")]
    # validation.csv stands in for dev.csv; its unknown label names file and line.
    with pytest.raises(cli.UsageError, match=r"validation\.csv, line 2: label 'good' is not"):
        processor.get_dev_examples(str(tmp_path))


def test_jsonl_processor_fields_labels_flag_and_unlabelled_test(tmp_path):
    _write(str(tmp_path / "train.jsonl"),
           '{"text": "great", "label": 1}\n\n{"text": "bad", "label": 0, "extra": [1]}\n')
    _write(str(tmp_path / "dev.jsonl"), '{"text": "fine", "label": 1}\n')
    _write(str(tmp_path / "test.jsonl"), '{"text": "unknown"}\n')
    processor = rc.create_processor("jsonl", data_dir=str(tmp_path), labels=["1", "0"])
    assert processor.get_labels() == ["1", "0"]
    train = processor.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.label) for e in train] == [("train-1", "great", "1"),
                                                           ("train-3", "bad", "0")]
    test = processor.get_test_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in test] == [("unknown", "1")]
    _write(str(tmp_path / "dev.jsonl"), '{"text": "fine", "label": 1}\n{"text": "x" "label": 0}\n')
    with pytest.raises(cli.UsageError, match=r"dev\.jsonl, line 2: not valid JSON"):
        processor.get_dev_examples(str(tmp_path))
    _write(str(tmp_path / "dev.jsonl"), '{"sentence": "fine", "label": 1}\n')
    with pytest.raises(cli.UsageError, match=r"dev\.jsonl, line 1: no field 'text'.*sentence"):
        processor.get_dev_examples(str(tmp_path))


@pytest.mark.parametrize("first_row, has_header, labels, expected", [
    (["label", "text"], "auto", None, True),        # "label" occurs in no later row
    (["pos", "text"], "auto", None, False),         # "pos" occurs again below
    (["neutral", "text"], "auto", ["neutral", "pos", "neg"], False),  # a known label
    (["pos", "text"], "true", None, True),          # forced
    (["label", "text"], "false", None, False),      # forced
])
def test_header_detection_rule(tmp_path, first_row, has_header, labels, expected):
    rows = [first_row, ["pos", "good"], ["neg", "bad"], ["pos", "fine"]]
    _write(str(tmp_path / "train.tsv"), _tsv(rows))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), has_header=has_header,
                                    labels=labels or ["neg", "pos", "label", "neutral"])
    path = str(tmp_path / "train.tsv")
    assert processor._detect_header(path, processor._rows(path), labels) is expected


def test_unlabelled_test_file_follows_the_train_header(tmp_path):
    _write(str(tmp_path / "train.tsv"), _tsv([["text", "label"], ["good", "pos"], ["bad", "neg"]]))
    _write(str(tmp_path / "test.tsv"), _tsv([["text"], ["t1"], ["t2"]]))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), text_a_column="0",
                                    label_column="1")
    assert processor.get_labels() == ["neg", "pos"]
    # The test file has no label column, so its first row is judged like the train file's.
    test = processor.get_test_examples(str(tmp_path))
    assert [e.text_a for e in test] == ["t1", "t2"]


def test_label_column_holding_text_is_caught(tmp_path):
    rows = [[f"label{i % 2}", f"sentence {i}"] for i in range(30)]
    _write(str(tmp_path / "train.tsv"), _tsv(rows))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path), label_column="1",
                                    text_a_column="0")
    with pytest.raises(cli.UsageError, match="looks like text.*--label_column"):
        processor.get_labels()


def test_input_errors_name_file_line_and_fix(tmp_path):
    _write(str(tmp_path / "train.tsv"), _tsv([["pos", "good"], ["neg", "bad"], ["pos"]]))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path))
    with pytest.raises(cli.UsageError, match=r"train\.tsv, line 3: expected at least 2 "
                                                 r"columns, found 1; fix the row"):
        processor.get_train_examples(str(tmp_path))
    with open(tmp_path / "train.tsv", "wb") as f:
        f.write("pos\tgood\nneg\tcaf\u00e9\n".encode("utf-8")
                + "pos\tna\u00efve\n".encode("latin-1"))
    processor = rc.create_processor("tsv", data_dir=str(tmp_path))
    with pytest.raises(cli.UsageError, match=r"train\.tsv, line 3: text is not valid UTF-8 "
                                                 r"\(byte 0xef.*iconv"):
        processor.get_train_examples(str(tmp_path))
    with pytest.raises(cli.UsageError, match=r"no dev file in .*dev\.tsv, validation\.tsv"):
        processor.get_dev_examples(str(tmp_path))


def test_unknown_task_lists_the_known_ones_and_generic_flags_are_checked():
    # The reference's tasks, the generic ones and the GLUE tasks of issue 15 (with the dash-less
    # aliases sst2/stsb that other tools use).
    with pytest.raises(cli.UsageError, match=r"Task not found: sst9; known tasks: cola, csv, "
                                             r"jsonl, mnli, mrpc, qnli, qqp, rte, sst-2, sst2, "
                                             r"sts-b, stsb, tsv, wnli, xnli"):
        rc.create_processor("sst9")
    with pytest.raises(cli.UsageError, match="--label_column only applies"):
        rc.create_processor("mrpc", label_column="0")
    assert rc.parse_label_list(" b, a ,c") == ["b", "a", "c"]
    with pytest.raises(cli.UsageError, match="more than once"):
        rc.parse_label_list("a,b,a")


def test_plugin_module_and_register_processor(monkeypatch):
    monkeypatch.setattr(rc, "PROCESSORS", dict(rc.PROCESSORS))
    rc.import_processor_module(PLUGIN)
    processor = rc.create_processor("Bilingual_Sentiment")
    assert type(processor).__name__ == "BilingualSentimentProcessor"
    examples = processor.get_train_examples(SAMPLE_DIR)
    assert len(examples) == 240 and {e.label for e in examples} == {"negative", "positive"}

    class MyProcessor(rc.DataProcessor):
        def get_labels(self):
            return ["x", "y"]

    assert rc.register_processor("mine", MyProcessor) is MyProcessor
    assert isinstance(rc.create_processor("MINE"), MyProcessor)
    with pytest.raises(ValueError, match="subclass of run_classifier.DataProcessor"):
        rc.register_processor("bad", dict)
    with pytest.raises(cli.UsageError, match="no such file"):
        rc.import_processor_module("/nonexistent/plugin.py")
    with pytest.raises(cli.UsageError, match="cannot import 'no_such_plugin_module'"):
        rc.import_processor_module("no_such_plugin_module")


# ------------------------------------------------------------------------------------------------
# Metrics, model head
# ------------------------------------------------------------------------------------------------


def _evaluate_metrics(num_labels, batches):
    """Runs metric_fn's update ops over batches of (loss, labels, logits, weights)."""
    with tf.Graph().as_default():
        per_example_loss = tf1.placeholder(tf.float32, [None])
        label_ids = tf1.placeholder(tf.int32, [None])
        logits = tf1.placeholder(tf.float32, [None, num_labels])
        weights = tf1.placeholder(tf.float32, [None])
        metrics = rc.metric_fn_builder(num_labels)(per_example_loss, label_ids, logits, weights)
        with tf1.Session() as sess:
            sess.run(tf1.local_variables_initializer())
            for loss, labels, batch_logits, batch_weights in batches:
                sess.run([op for _, op in metrics.values()],
                         {per_example_loss: loss, label_ids: labels, logits: batch_logits,
                          weights: batch_weights})
            return sess.run({name: value for name, (value, _) in metrics.items()})


def _one_hot_logits(predictions, num_labels):
    return [[5.0 if k == p else 0.0 for k in range(num_labels)] for p in predictions]


def test_three_class_metrics_against_hand_computation():
    gold = [0, 0, 0, 0, 1, 1, 2, 2, 2]
    pred = [0, 0, 1, 2, 1, 1, 2, 0, 0]
    # Confusion (rows gold): [[2,1,1],[0,2,0],[2,0,1]]; precision 2/4, 2/3, 1/2; recall 2/4, 2/2,
    # 1/3; F1 0.5, 0.8, 0.4. MCC = (5*9 - (4*4+2*3+3*2)) / sqrt((81-29)*(81-29)) = 17/52.
    batches = [([1.0] * 5, gold[:5], _one_hot_logits(pred[:5], 3), [1.0] * 5),
               ([2.0] * 4, gold[5:], _one_hot_logits(pred[5:], 3), [1.0] * 4)]
    values = _evaluate_metrics(3, batches)
    assert set(values) | {"global_step", "loss"} == set(rc.eval_metric_names(3))
    assert values["eval_accuracy"] == pytest.approx(5 / 9)
    assert values["eval_loss"] == pytest.approx((5 * 1.0 + 4 * 2.0) / 9)
    assert values["eval_macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert values["eval_macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert values["eval_macro_f1"] == pytest.approx((0.5 + 0.8 + 0.4) / 3)
    assert values["eval_mcc"] == pytest.approx(17 / 52)


def test_binary_metrics_ignore_padding_and_auc_matches_rank_statistic():
    gold = [1, 1, 1, 0, 0, 0, 1, 0]
    positive_probability = [0.9, 0.3, 0.8, 0.2, 0.6, 0.4, 0.05, 0.95]
    weights = [1, 1, 1, 1, 1, 1, 0, 0]  # The last two are TPU padding examples.
    logits = [[math.log(1 - p), math.log(p)] for p in positive_probability]
    losses = [1, 2, 3, 4, 5, 6, 100, 100]
    values = _evaluate_metrics(2, [(losses[:3], gold[:3], logits[:3], weights[:3]),
                                   (losses[3:], gold[3:], logits[3:], weights[3:])])
    assert set(values) | {"global_step", "loss"} == set(rc.eval_metric_names(2))
    # Real examples: TP 2 (0.9, 0.8), FN 1 (0.3), FP 1 (0.6), TN 2.
    assert values["eval_accuracy"] == pytest.approx(4 / 6)
    assert values["eval_loss"] == pytest.approx(3.5)
    for name in ("eval_precision", "eval_recall", "eval_f1", "eval_macro_precision",
                 "eval_macro_recall", "eval_macro_f1"):
        assert values[name] == pytest.approx(2 / 3), name
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (4 - 1) / 9.
    assert values["eval_mcc"] == pytest.approx(1 / 3)
    # Positive-over-negative pairs: 0.9 beats 3, 0.8 beats 3, 0.3 beats 1 -> 7 of 9.
    assert values["eval_auc"] == pytest.approx(7 / 9, abs=0.01)


def test_metrics_of_absent_classes_and_degenerate_mcc():
    # Class 2 is neither gold nor predicted: left out of the macro average; all-one-class -> MCC 0.
    values = _evaluate_metrics(3, [([0.0] * 3, [0, 0, 1], _one_hot_logits([0, 0, 0], 3), [1] * 3)])
    assert values["eval_macro_precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert values["eval_macro_recall"] == pytest.approx((1 + 0) / 2)
    assert values["eval_mcc"] == 0.0


def test_create_model_head_names_and_dropout_rate(tiny_model):
    config = modeling.BertConfig.from_json_file(tiny_model["bert_config_file"])
    with tf.Graph().as_default() as graph:
        tf1.set_random_seed(0)
        input_ids = tf.ones([256, 8], tf.int32)
        outputs = rc.create_model(config, True, input_ids, tf.ones_like(input_ids),
                                  tf.zeros_like(input_ids), tf.zeros([256], tf.int32), 3, False)
        loss, per_example_loss, logits, probabilities = outputs  # Unpacks like the reference.
        shapes = {v.name: v.shape.as_list() for v in tf1.trainable_variables()}
        dropped = graph.get_tensor_by_name("loss/dropout/SelectV2:0")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            dropped_value, probabilities_value = sess.run([dropped, probabilities])
    assert shapes["output_weights:0"] == [3, 32] and shapes["output_bias:0"] == [3]
    assert per_example_loss.shape.as_list() == [256] and logits.shape.as_list() == [256, 3]
    assert probabilities_value.sum(axis=1) == pytest.approx([1.0] * 256, abs=1e-5)
    # TF2 dropout takes the drop rate: 10% of the pooled activations are zeroed, not 90%.
    assert 0.07 < (dropped_value == 0).mean() < 0.13


# ------------------------------------------------------------------------------------------------
# The script end to end (subprocesses)
# ------------------------------------------------------------------------------------------------


def test_bad_input_and_bad_flags_exit_1_with_one_line(tmp_path, tiny_model):
    # One data directory per broken dev file; all runs start at once to share the TF start-up cost.
    train = _tsv([["label", "text"], ["pos", "good"], ["neg", "bad"]])
    cases = {
        "bad_encoding": (b"label\ttext\npos\tfine\nneg\tna\xefve\n",
                         "dev.tsv, line 3: text is not valid UTF-8"),
        "too_few_columns": (_tsv([["label", "text"], ["pos", "fine"], ["neg"]]).encode(),
                            "dev.tsv, line 3: expected at least 2 columns, found 1"),
        "unknown_label": (_tsv([["label", "text"], ["pos", "fine"], ["meh", "so so"]]).encode(),
                          "dev.tsv, line 3: label 'meh' is not in the label list ['neg', 'pos']"),
    }
    runs = {}
    for case, (dev_bytes, _) in cases.items():
        data_dir = tmp_path / case
        _write(str(data_dir / "train.tsv"), train)
        (data_dir / "dev.tsv").write_bytes(dev_bytes)
        runs[case] = ["--task_name=tsv", f"--data_dir={data_dir}",
                      f"--output_dir={tmp_path / 'out' / case}", "--do_eval=true",
                      "--do_train=true"] + _model_flags(tiny_model)
    flag_base = [f"--data_dir={SAMPLE_DIR}", f"--output_dir={tmp_path / 'out' / 'flags'}",
                 "--do_train=true", f"--vocab_file={tiny_model['vocab_file']}",
                 f"--bert_config_file={tiny_model['bert_config_file']}"]
    runs["long_sequence"] = flag_base + ["--task_name=tsv", "--max_seq_length=64"]
    runs["unknown_task"] = flag_base + ["--task_name=nope", "--max_seq_length=32"]
    expected = {case: message for case, (_, message) in cases.items()}
    expected["long_sequence"] = (
        "Cannot use sequence length 64 because the BERT model was only trained up to sequence "
        "length 32; pass --max_seq_length=32 or less")
    expected["unknown_task"] = "Task not found: nope; known tasks: cola, csv, jsonl, mnli, mrpc"

    results = dict(zip(runs, _run_scripts_in_parallel(list(runs.values()))))
    for case, result in results.items():
        assert result.returncode == 1, (case, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, case
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
        assert len(error_lines) == 1, (case, result.stderr[-2000:])
        assert expected[case] in error_lines[0], (case, error_lines[0])


def test_train_eval_predict_writes_results_then_predicts_from_labels_txt(tmp_path, tiny_model):
    output_dir = tmp_path / "out"
    result = _run_script(["--task_name=tsv", f"--data_dir={SAMPLE_DIR}",
                          f"--output_dir={output_dir}", "--do_train=true", "--do_eval=true",
                          "--do_predict=true", "--train_batch_size=16", "--learning_rate=1e-3",
                          "--num_train_epochs=5", "--num_accumulation_steps=2",
                          "--tf_random_seed=1"] + _model_flags(tiny_model))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Gradient accumulation: 2 micro-batches of 8 examples" in result.stderr
    results = _read_results(output_dir / "eval_results.txt")
    assert sorted(results) == rc.eval_metric_names(2)
    assert results["global_step"] == 75  # int(240 / 16 * 5)
    for name, value in results.items():
        if name not in ("global_step", "loss", "eval_loss", "eval_mcc"):
            assert 0.0 <= value <= 1.0, name
    # The sample task is easy: even the tiny random-init model learns it.
    assert results["eval_accuracy"] > 0.7, results
    assert (output_dir / "labels.txt").read_text() == "negative\npositive\n"

    test_results = (output_dir / "test_results.tsv").read_text().splitlines()
    assert len(test_results) == 40
    probabilities = [[float(x) for x in line.split("\t")] for line in test_results]
    assert all(len(p) == 2 and abs(sum(p) - 1) < 1e-4 for p in probabilities)
    predictions = (output_dir / "test_predictions.tsv").read_text().splitlines()
    assert predictions[0] == "guid\tprediction\tnegative\tpositive"
    assert len(predictions) == 41
    guid, label, *probs = predictions[1].split("\t")
    assert guid == "test-2" and label in ("negative", "positive")
    assert [float(p) for p in probs] == probabilities[0]
    assert label == ("positive" if probabilities[0][1] > probabilities[0][0] else "negative")

    # Predict again without training: the labels come from labels.txt, the TFRecord is reused.
    record = output_dir / "predict.tf_record"
    mtime = record.stat().st_mtime_ns
    result = _run_script(["--task_name=tsv", f"--data_dir={SAMPLE_DIR}",
                          f"--output_dir={output_dir}", "--do_predict=true"]
                         + _model_flags(tiny_model))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reusing" in result.stderr and record.stat().st_mtime_ns == mtime
    assert (output_dir / "test_results.tsv").read_text().splitlines() == test_results


def test_plugin_early_stopping_and_export(tmp_path, tiny_model):
    output_dir = tmp_path / "out"
    # Learning rate 0: the dev loss never improves, so early stopping must end training early.
    result = _run_script([f"--processor_module={PLUGIN}", "--task_name=bilingual_sentiment",
                          f"--data_dir={SAMPLE_DIR}", f"--output_dir={output_dir}",
                          "--do_train=true", "--do_eval=true", "--do_export=true",
                          "--train_batch_size=16", "--num_train_epochs=5", "--learning_rate=0",
                          "--save_checkpoints_steps=2", "--max_steps_without_decrease=4",
                          "--eval_batch_size=32"] + _model_flags(tiny_model))
    assert result.returncode == 0, result.stderr[-3000:]
    final_step = int(tf.train.latest_checkpoint(str(output_dir)).rsplit("-", 1)[1])
    assert final_step < 75, "training should stop well before 240/16*5 = 75 steps"
    assert "Early stopping ended training" in result.stderr
    results = _read_results(output_dir / "eval_results.txt")
    assert results["global_step"] <= final_step
    assert tf.train.latest_checkpoint(str(output_dir / "best")) is not None

    # The same layout as export_model.py --format=saved_model (issue 13: one inference path).
    saved_model_dir = output_dir / "export" / "saved_model"
    assert (saved_model_dir / "assets" / "labels.txt").read_text() == "negative\npositive\n"
    serving = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    ids = tf.constant([[2, 10, 11, 3] + [0] * 28] * 3, tf.int32)
    outputs = serving(input_ids=ids, input_mask=tf.cast(ids > 0, tf.int32),
                      segment_ids=tf.zeros_like(ids))
    assert set(outputs) >= {"probabilities", "logits"}
    assert outputs["probabilities"].shape == (3, 2)
    assert tf.reduce_sum(outputs["probabilities"], axis=1).numpy() == pytest.approx([1.0] * 3)
    predicted = inference.Predictor(str(saved_model_dir)).predict(["good", "bad ||| film"])
    assert [p["label"] in ("negative", "positive") for p in predicted] == [True, True]


@pytest.mark.slow
def test_fine_tune_real_minilm_on_movie_reviews(tmp_path, minilm_dir):
    """all-MiniLM-L6-v2 -> convert_checkpoint.py -> 150 train / 50 dev movie-review snippets."""
    model_dir = tmp_path / "minilm_tf"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    converted = subprocess.run([sys.executable, "convert_checkpoint.py", f"--from_hf={minilm_dir}",
                                f"--output_dir={model_dir}"], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    assert converted.returncode == 0, converted.stderr[-3000:]

    reviews = artifacts.movie_reviews()
    random.Random(0).shuffle(reviews)
    data_dir = tmp_path / "movies"
    for split, part in (("train", reviews[:150]), ("dev", reviews[150:])):
        _write(str(data_dir / f"{split}.tsv"), _tsv([["label", "text"]] + [list(r) for r in part]))
    output_dir = tmp_path / "out"
    result = _run_script(["--task_name=tsv", f"--data_dir={data_dir}",
                          f"--output_dir={output_dir}", f"--vocab_file={model_dir}/vocab.txt",
                          f"--bert_config_file={model_dir}/bert_config.json",
                          f"--init_checkpoint={model_dir}/bert_model.ckpt", "--do_train=true",
                          "--do_eval=true", "--max_seq_length=64", "--train_batch_size=8",
                          "--eval_batch_size=25", "--learning_rate=5e-5", "--num_train_epochs=5",
                          "--tf_random_seed=1"], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    results = _read_results(output_dir / "eval_results.txt")
    print("MiniLM movie-review eval results:", json.dumps(results, indent=1))
    assert results["eval_accuracy"] > 0.7, results
