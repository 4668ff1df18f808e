"""Tests for extract_features.py: reference format, pooling, bucketing, the encoder, MiniLM parity.

A tiny random BERT (2 layers, hidden 32) saved to a checkpoint in a temporary directory is the
model for most tests; tests/numpy_bert.py (an independent NumPy forward pass) is the yardstick. The
real all-MiniLM-L6-v2, converted with convert_checkpoint.py, checks the sentence-embedding use.
"""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import cli
import extract_features
import modeling
import runtime
from tasks import features as features_lib
from tests import numpy_bert

tf1 = tf.compat.v1


_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on",
          "mat", "hello", "world", "runs", "fast", "##s", "##ing", ".", ",", "!", "?", "is", "it",
          "and", "very", "big", "small", "house", "red"]

_TINY_CONFIG = dict(vocab_size=len(_WORDS), hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, hidden_act="gelu",
                    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                    max_position_embeddings=64, type_vocab_size=2, initializer_range=0.3)

# Lines of the test input: a single sentence, a pair, an empty line, `|||` without spaces (not a
# pair), a line longer than max_seq_length (truncated), unknown words, a pair whose B is long.
_LINES = [
    "the cat sat on the mat .",
    "hello world ||| the dog runs",
    "",
    "cat|||dog",
    " ".join(["the very big red house"] * 8),
    "Hello, World! it is a small dog",
    "a ||| " + " ".join(["dog runs fast"] * 6),
    "it",
]

_MAX_SEQ_LENGTH = 24


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random tiny BERT saved as bert_model.ckpt + bert_config.json + vocab.txt."""
    out = tmp_path_factory.mktemp("tiny_bert")
    (out / "vocab.txt").write_text("\n".join(_WORDS) + "\n")
    (out / "bert_config.json").write_text(json.dumps(_TINY_CONFIG))
    with tf.Graph().as_default():
        tf1.set_random_seed(1)
        input_ids = tf1.placeholder(tf.int32, [None, None])
        modeling.BertModel(modeling.BertConfig.from_dict(_TINY_CONFIG), False, input_ids)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, str(out / "bert_model.ckpt"))
    (out / "input.txt").write_text("\n".join(_LINES) + "\n")
    return out


@pytest.fixture(scope="module")
def tiny_weights(tiny_model):
    """The tiny checkpoint as a dict of numpy arrays (released TF names)."""
    ckpt = str(tiny_model / "bert_model.ckpt")
    return {name: tf.train.load_variable(ckpt, name) for name, _ in tf.train.list_variables(ckpt)}


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model):
    encoder = extract_features.BertEncoder(
        str(tiny_model / "bert_config.json"), str(tiny_model / "vocab.txt"),
        str(tiny_model / "bert_model.ckpt"), max_seq_length=_MAX_SEQ_LENGTH,
        layer_indexes=(-1, 0), batch_size=3)
    yield encoder
    encoder.close()


def _numpy_layers(weights, feature):
    """Independent forward pass of one unpadded feature: list of [len, hidden] per encoder layer."""
    # convention="bert": the config's "gelu" is the reference's tanh approximation.
    out = numpy_bert.forward(weights, _TINY_CONFIG, np.array([feature.input_ids]),
                             np.array([feature.input_mask]), np.array([feature.input_type_ids]),
                             convention="bert")
    return [layer[0] for layer in out["all_layers"]]


def _parse_flags_and_run(**flag_values):
    """Runs extract_features.main in-process with the given flags, in a FlagValues of its own."""
    argv = ["extract_features.py"] + ["--%s=%s" % kv for kv in flag_values.items()]
    # The script's flags go into a private FlagValues, as if it ran alone: other scripts' flags
    # (input_file, output_file, ...) may live in the global one in this test process.
    script_flags = flags.FlagValues()
    extract_features.define_flags(script_flags)
    script_flags(argv)
    saved = extract_features.FLAGS
    extract_features.FLAGS = script_flags
    try:
        extract_features.main([])
    finally:
        extract_features.FLAGS = saved


def _model_flags(model_dir, **extra):
    values = dict(vocab_file=model_dir / "vocab.txt",
                  bert_config_file=model_dir / "bert_config.json",
                  init_checkpoint=model_dir / "bert_model.ckpt", max_seq_length=_MAX_SEQ_LENGTH)
    values.update(extra)
    return values


# ------------------------------------------------------------------------------------------------
# Reading and converting input
# ------------------------------------------------------------------------------------------------

def test_read_examples_pairs_and_empty_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("a b ||| c d\n\nx|||y\n  trailing |||  \nfoo ||| bar ||| baz\n\u00e9t\u00e9\n"
                     .encode("utf-8"))
    examples = extract_features.read_examples(str(path))
    got = [(e.unique_id, e.text_a, e.text_b) for e in examples]
    assert got == [
        (0, "a b", "c d"),
        (1, "", None),            # empty lines still give examples
        (2, "x|||y", None),       # the regex needs a space on each side of |||
        (3, "trailing |||", None),  # stripped first, so no space is left after |||
        (4, "foo ||| bar", "baz"),  # greedy: the last ||| splits
        (5, "\u00e9t\u00e9", None),
    ]


def test_read_examples_reports_bad_utf8(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(ValueError, match="line 2 is not valid UTF-8"):
        extract_features.read_examples(str(path))


def test_features_truncation_and_segments(tiny_encoder):
    features = tiny_encoder.features_from_texts(
        ["the cat " * 30, ("hello world", "the dog runs"), ("the " * 40, "cat"), ""])
    assert len(features[0]) == _MAX_SEQ_LENGTH
    assert features[0].tokens[0] == "[CLS]" and features[0].tokens[-1] == "[SEP]"
    assert features[1].tokens == ["[CLS]", "hello", "world", "[SEP]", "the", "dog", "runs", "[SEP]"]
    assert features[1].input_type_ids == [0, 0, 0, 0, 1, 1, 1, 1]
    # The pair is cut from the longer side only.
    assert len(features[2]) == _MAX_SEQ_LENGTH and features[2].tokens[-2:] == ["cat", "[SEP]"]
    assert features[3].tokens == ["[CLS]", "[SEP]"]


def test_layer_index_validation(tiny_encoder):
    assert features_lib.parse_layer_indexes("-1,-2,0,1", 2) == [-1, -2, 0, 1]
    with pytest.raises(ValueError, match="layer 2 does not exist in a 2-layer model"):
        features_lib.parse_layer_indexes("-1,2", 2)
    with pytest.raises(ValueError, match="not an integer"):
        features_lib.parse_layer_indexes("-1,last", 2)


# ------------------------------------------------------------------------------------------------
# The reference output format, end to end through the command line
# ------------------------------------------------------------------------------------------------

def test_reference_jsonl_format(tiny_model, tiny_weights, tiny_encoder, repo_root, tmp_path):
    output = tmp_path / "features.jsonl"
    cmd = [sys.executable, "extract_features.py", "--input_file=%s" % (tiny_model / "input.txt"),
           "--output_file=%s" % output, "--layers=-1,0", "--batch_size=3"]
    cmd += ["--%s=%s" % kv for kv in _model_flags(tiny_model).items()]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sentences/s" in result.stderr  # the progress line

    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(_LINES)  # one line per input line, the empty one included
    features = tiny_encoder.features_from_texts(
        [cli.split_pair(s) if cli.split_pair(s)[1] is not None else s for s in _LINES])
    for unique_id, (line, feature) in enumerate(zip(lines, features)):
        parsed = json.loads(line, object_pairs_hook=collections.OrderedDict)
        # Key order and json.dumps' default separators: re-serialising gives the same bytes.
        assert json.dumps(parsed) == line
        assert list(parsed) == ["linex_index", "features"]
        assert parsed["linex_index"] == unique_id
        assert [f["token"] for f in parsed["features"]] == feature.tokens  # padding excluded
        expected = _numpy_layers(tiny_weights, feature)
        for position, token_entry in enumerate(parsed["features"]):
            assert list(token_entry) == ["token", "layers"]
            assert [layer["index"] for layer in token_entry["layers"]] == [-1, 0]
            for layer in token_entry["layers"]:
                assert list(layer) == ["index", "values"]
                values = np.array(layer["values"])
                # Layer indexes count encoder layers (0 = first block, not the embeddings).
                reference = expected[layer["index"]][position]
                np.testing.assert_allclose(values, reference, atol=2e-5)
                # Rounded to 6 decimals exactly as round(float(x), 6) does.
                assert all(round(v, 6) == v for v in layer["values"])
                assert any(len(repr(v).split(".")[-1]) == 6 for v in layer["values"])


# ------------------------------------------------------------------------------------------------
# Pooling, bucketing and the encoder
# ------------------------------------------------------------------------------------------------

def _expected_pool(token_states, strategy):
    """Pools one sentence from its real-token vectors, written independently of the module.

    Args:
      token_states: [num_layers, len, hidden], the real-token vectors of each requested layer.
      strategy: "cls", "mean", "max" or "mean_max" (pools of several layers are concatenated).
    """
    if strategy == "cls":
        return np.concatenate([layer[0] for layer in token_states])
    if strategy == "mean":
        return np.concatenate([layer.mean(axis=0) for layer in token_states])
    if strategy == "max":
        return np.concatenate([layer.max(axis=0) for layer in token_states])
    if strategy == "mean_max":
        return np.concatenate([np.concatenate([layer.mean(axis=0), layer.max(axis=0)])
                               for layer in token_states])
    raise AssertionError(strategy)


@pytest.mark.parametrize("strategy", ["cls", "mean", "max", "mean_max", "first_last_mean"])
def test_every_pooling_strategy_matches_numpy(tiny_encoder, strategy):
    texts = _LINES + ["dog", "the cat is very big and the house is red"]
    token_outputs = tiny_encoder.encode_tokens(texts, layers=[-1, 0])
    for layers in ([-1], [-1, 0]):
        got = tiny_encoder.encode(texts, pooling=strategy, layers=layers)
        assert got.dtype == np.float32
        for row, (_, states) in enumerate(token_outputs):
            if strategy == "first_last_mean":
                # Layer 0 is the first block, layer -1 (index 0 of `states`) the last one.
                want = ((states[1] + states[0]) / 2.0).mean(axis=0)
            else:
                want = _expected_pool(states[:len(layers)], strategy)
            np.testing.assert_allclose(got[row], want, atol=1e-5, err_msg="row %d" % row)
    assert got.shape[1] == tiny_encoder.output_dim(strategy, layers)


def test_bucketed_equals_fully_padded(tiny_model, tiny_encoder):
    texts = _LINES * 3 + ["dog"] * 4
    padded = extract_features.BertEncoder(
        str(tiny_model / "bert_config.json"), str(tiny_model / "vocab.txt"),
        str(tiny_model / "bert_model.ckpt"), max_seq_length=_MAX_SEQ_LENGTH,
        layer_indexes=(-1, 0), batch_size=3, bucket_by_length=False)
    try:
        want = padded.encode_tokens(texts)
        want_pooled = padded.encode(texts, pooling="mean_max")
    finally:
        padded.close()
    got = tiny_encoder.encode_tokens(texts)
    assert [tokens for tokens, _ in got] == [tokens for tokens, _ in want]
    for (_, g), (_, w) in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-5)
    np.testing.assert_allclose(tiny_encoder.encode(texts, pooling="mean_max"), want_pooled,
                               atol=1e-5)
    # Bucketing did reduce padding: the batches are sorted by length.
    lengths = [len(tokens) for tokens, _ in got]
    batches = features_lib.make_batches(lengths, 3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(texts)))
    padded_tokens = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded_tokens < len(texts) * _MAX_SEQ_LENGTH


def test_encoder_builds_and_restores_once(tiny_model, monkeypatch):
    builds, restores = [], []
    original_init = modeling.BertModel.__init__
    original_restore = tf1.train.Saver.restore

    def counting_init(self, *args, **kwargs):
        builds.append(1)
        original_init(self, *args, **kwargs)

    def counting_restore(self, *args, **kwargs):
        restores.append(1)
        return original_restore(self, *args, **kwargs)

    monkeypatch.setattr(modeling.BertModel, "__init__", counting_init)
    monkeypatch.setattr(tf1.train.Saver, "restore", counting_restore)
    with extract_features.BertEncoder(
            str(tiny_model / "bert_config.json"), str(tiny_model / "vocab.txt"),
            str(tiny_model / "bert_model.ckpt"), max_seq_length=_MAX_SEQ_LENGTH) as encoder:
        assert (len(builds), len(restores)) == (1, 1)
        first = encoder.encode(["the cat sat"], pooling="mean")
        for n in range(1, 6):
            encoder.encode(["the dog runs fast"] * n + ["a"], pooling="cls")
            encoder.encode_tokens(["hello world"] * n)
        again = encoder.encode(["the cat sat"], pooling="mean")
        assert (len(builds), len(restores)) == (1, 1)
        assert encoder.session_runs == 12
        np.testing.assert_array_equal(first, again)


def test_estimator_path_matches_encoder(tiny_model, tiny_encoder):
    """The --use_tpu path (TPUEstimator, here with use_tpu=False) gives the encoder's vectors."""
    features = tiny_encoder.features_from_texts(_LINES)
    bert_config = modeling.BertConfig.from_json_file(str(tiny_model / "bert_config.json"))
    outputs = list(features_lib.estimator_token_outputs(
        features, bert_config, str(tiny_model / "bert_model.ckpt"), [-1, 0],
        seq_length=_MAX_SEQ_LENGTH, batch_size=3, options=runtime.RuntimeOptions()))
    want = tiny_encoder.encode_feature_tokens(features, [-1, 0])
    assert len(outputs) == len(features)
    for got, expected in zip(outputs, want):
        np.testing.assert_allclose(got, expected, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Script: pooled outputs, npy, errors
# ------------------------------------------------------------------------------------------------

def test_npy_rows_in_input_order(tiny_model, tiny_encoder, tmp_path):
    output = tmp_path / "vectors.npy"
    _parse_flags_and_run(input_file=tiny_model / "input.txt", output_file=output,
                         pooling_strategy="mean", pooling_layer="-1,0", output_format="npy",
                         batch_size=2, **_model_flags(tiny_model))
    vectors = np.load(str(output))
    settings = json.loads((tmp_path / "vectors.npy.json").read_text())
    assert vectors.dtype == np.float32 and vectors.shape == (len(_LINES), 64)
    assert settings["rows"] == len(_LINES) and settings["pooling_layer"] == [-1, 0]
    # Each line alone (a batch of one, no bucketing involved) gives the same row.
    examples = extract_features.read_examples(str(tiny_model / "input.txt"))
    for row, example in enumerate(examples):
        text = example.text_a if example.text_b is None else (example.text_a, example.text_b)
        alone = tiny_encoder.encode([text], pooling="mean", layers=[-1, 0])[0]
        np.testing.assert_allclose(vectors[row], alone, atol=1e-5, err_msg="row %d" % row)
    assert sorted(os.listdir(tmp_path)) == ["vectors.npy", "vectors.npy.json"]  # no temp files


def test_pooled_jsonl(tiny_model, tiny_encoder, tmp_path):
    output = tmp_path / "vectors.jsonl"
    _parse_flags_and_run(input_file=tiny_model / "input.txt", output_file=output,
                         pooling_strategy="cls", **_model_flags(tiny_model))
    lines = output.read_text().splitlines()
    assert len(lines) == len(_LINES)
    first = json.loads(lines[0], object_pairs_hook=collections.OrderedDict)
    assert list(first) == ["linex_index", "values"] and first["linex_index"] == 0
    want = tiny_encoder.encode([_LINES[0]], pooling="cls", layers=[-1])[0]
    np.testing.assert_allclose(first["values"], want, atol=1e-5)


@pytest.mark.parametrize("flag_values, message", [
    (dict(init_checkpoint="/nonexistent/bert_model.ckpt"), "checkpoint not found"),
    (dict(output_format="npy"), "needs a pooled --pooling_strategy"),
    (dict(layers="-1,5"), "layer 5 does not exist"),
    (dict(pooling_strategy="mean", pooling_layer="x"), "not an integer"),
    (dict(max_seq_length=100), "longer than max_position_embeddings"),
    (dict(output_file="/nonexistent_dir/out.jsonl"), "does not exist; create"),
])
def test_usage_errors(tiny_model, tmp_path, flag_values, message):
    values = _model_flags(tiny_model, input_file=tiny_model / "input.txt",
                          output_file=tmp_path / "out.jsonl")
    values.update(flag_values)
    with pytest.raises(cli.UsageError, match=message):
        _parse_flags_and_run(**values)
    assert not os.listdir(tmp_path)


def test_encoder_rejects_foreign_checkpoint(tiny_model, tmp_path):
    with tf.Graph().as_default():
        tf1.get_variable("something/else", [3])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, str(tmp_path / "other.ckpt"))
    with pytest.raises(ValueError, match="holds none of the encoder variables"):
        extract_features.BertEncoder(str(tiny_model / "bert_config.json"),
                                     str(tiny_model / "vocab.txt"), str(tmp_path / "other.ckpt"),
                                     max_seq_length=_MAX_SEQ_LENGTH)


# ------------------------------------------------------------------------------------------------
# The real all-MiniLM-L6-v2
# ------------------------------------------------------------------------------------------------

def test_minilm_mean_pooling_matches_numpy_sentence_embedding(minilm_dir, repo_root, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    converted = tmp_path / "minilm_tf"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "convert_checkpoint.py", "--from_hf", str(minilm_dir),
                             "--output_dir", str(converted)], cwd=repo_root, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]

    texts = ["A man is eating food.", "The quick brown fox jumps over the lazy dog!",
             "BERT encodes sentences.", "", "Stock markets fell sharply on Tuesday after the "
             "central bank raised interest rates by half a percentage point."]
    with extract_features.BertEncoder(
            str(converted / "bert_config.json"), str(converted / "vocab.txt"),
            str(converted / "bert_model.ckpt"), max_seq_length=128, batch_size=2) as encoder:
        got = encoder.encode(texts, pooling="mean", layers=[-1])
        features = encoder.features_from_texts(texts)
    got = got / np.linalg.norm(got, axis=1, keepdims=True)

    weights = safetensors_numpy.load_file(os.path.join(minilm_dir, "model.safetensors"))
    with open(os.path.join(minilm_dir, "config.json")) as f:
        hf_config = json.load(f)
    for row, feature in enumerate(features):
        out = numpy_bert.forward(weights, hf_config, np.array([feature.input_ids]),
                                 np.array([feature.input_mask]),
                                 np.array([feature.input_type_ids]))
        want = numpy_bert.sentence_embedding(out["sequence_output"], np.array([feature.input_mask]))
        np.testing.assert_allclose(got[row], want[0], atol=1e-4, err_msg=texts[row])
    assert got.shape == (len(texts), 384)
