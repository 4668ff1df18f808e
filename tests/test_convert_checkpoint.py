"""Tests for convert_checkpoint.py on the real all-MiniLM-L6-v2 and on tiny synthetic HF models.

The yardstick is tests/numpy_bert.py, a NumPy forward pass of the *original* Hugging Face weights;
the converted checkpoint is loaded into modeling.BertModel and must compute the same thing.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import cli
import convert_checkpoint
import modeling
import tokenization
from tests import numpy_bert

tf1 = tf.compat.v1

PARITY_TOLERANCE = 1e-4

# Real sentences of different lengths; the pair exercises the token-type embeddings.
SENTENCES = [
    ("A man is playing a guitar on the stage.", None),
    ("The new movie is awesome, but the ending felt rushed and a little predictable.", None),
    ("Hello world", None),
    ("Café owners in Zürich raised prices again.", None),
    ("How do I convert a checkpoint?", "Run the converter with --from_hf."),
]
MAX_SEQ_LENGTH = 32

TINY = {"vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 37, "max_position_embeddings": 64, "type_vocab_size": 2}


def run_converter(repo_root, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)
    return subprocess.run([sys.executable, "convert_checkpoint.py", *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)


def checkpoint_arrays(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def encode(tokenizer, sentences, max_seq_length):
    """[CLS] a [SEP] (b [SEP]) ids, mask and segment ids, padded: three int32 arrays [B, S]."""
    ids, mask, types = [], [], []
    for text_a, text_b in sentences:
        tokens = ["[CLS]"] + tokenizer.tokenize(text_a) + ["[SEP]"]
        segments = [0] * len(tokens)
        if text_b:
            tokens_b = tokenizer.tokenize(text_b) + ["[SEP]"]
            tokens += tokens_b
            segments += [1] * len(tokens_b)
        assert len(tokens) <= max_seq_length
        pad = max_seq_length - len(tokens)
        ids.append(tokenizer.convert_tokens_to_ids(tokens) + [0] * pad)
        mask.append([1] * len(tokens) + [0] * pad)
        types.append(segments + [0] * pad)
    return (np.array(ids, np.int32), np.array(mask, np.int32), np.array(types, np.int32))


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_tf(minilm_dir, repo_root, tmp_path_factory):
    """all-MiniLM-L6-v2 converted by the command line into our layout."""
    out = str(tmp_path_factory.mktemp("minilm") / "minilm_tf")
    result = run_converter(repo_root, f"--from_hf={minilm_dir}", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def minilm_inputs(minilm_dir):
    tokenizer = tokenization.FullTokenizer(os.path.join(minilm_dir, "vocab.txt"),
                                           do_lower_case=True)
    return encode(tokenizer, SENTENCES, MAX_SEQ_LENGTH)


def tiny_hf_model(directory, seed=0, with_heads=True, prefix="bert.", old_layer_norm_names=False,
                  hidden_act="gelu_new", tied_decoder_copies=False):
    """Writes a random BertForPreTraining-style HF folder (safetensors, config.json, vocab.txt).

    Returns:
      dict of the tensors written (HF names).
    """
    rng = np.random.default_rng(seed)
    h, i, v = TINY["hidden_size"], TINY["intermediate_size"], TINY["vocab_size"]

    def rand(*shape):
        return rng.normal(0.0, 0.3, size=shape).astype(np.float32)

    t = {"embeddings.word_embeddings.weight": rand(v, h),
         "embeddings.token_type_embeddings.weight": rand(TINY["type_vocab_size"], h),
         "embeddings.position_embeddings.weight": rand(TINY["max_position_embeddings"], h),
         "embeddings.LayerNorm.weight": 1.0 + rand(h), "embeddings.LayerNorm.bias": rand(h),
         "pooler.dense.weight": rand(h, h), "pooler.dense.bias": rand(h)}
    for layer in range(TINY["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        for part in ("query", "key", "value"):
            t[p + f"attention.self.{part}.weight"] = rand(h, h)
            t[p + f"attention.self.{part}.bias"] = rand(h)
        t[p + "attention.output.dense.weight"] = rand(h, h)
        t[p + "attention.output.dense.bias"] = rand(h)
        t[p + "attention.output.LayerNorm.weight"] = 1.0 + rand(h)
        t[p + "attention.output.LayerNorm.bias"] = rand(h)
        t[p + "intermediate.dense.weight"] = rand(i, h)
        t[p + "intermediate.dense.bias"] = rand(i)
        t[p + "output.dense.weight"] = rand(h, i)
        t[p + "output.dense.bias"] = rand(h)
        t[p + "output.LayerNorm.weight"] = 1.0 + rand(h)
        t[p + "output.LayerNorm.bias"] = rand(h)
    if old_layer_norm_names:
        t = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                       "LayerNorm.beta"): val
             for k, val in t.items()}
    t = {prefix + k: val for k, val in t.items()}
    if with_heads:
        t.update({"cls.predictions.transform.dense.weight": rand(h, h),
                  "cls.predictions.transform.dense.bias": rand(h),
                  "cls.predictions.transform.LayerNorm.weight": 1.0 + rand(h),
                  "cls.predictions.transform.LayerNorm.bias": rand(h),
                  "cls.predictions.bias": rand(v),
                  "cls.seq_relationship.weight": rand(2, h),
                  "cls.seq_relationship.bias": rand(2)})
        if tied_decoder_copies:
            # What torch.save(model.state_dict()) of a BertForPreTraining holds: the tied copies.
            t["cls.predictions.decoder.weight"] = t[prefix + "embeddings.word_embeddings.weight"]
            t["cls.predictions.decoder.bias"] = t["cls.predictions.bias"]
    t[prefix + "embeddings.position_ids"] = np.arange(TINY["max_position_embeddings"],
                                                      dtype=np.int64)[None]
    os.makedirs(directory, exist_ok=True)
    save_file(t, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    config = dict(TINY, model_type="bert", hidden_act=hidden_act, layer_norm_eps=1e-12,
                  architectures=["BertForPreTraining" if with_heads else "BertModel"])
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                          + [f"w{n}" for n in range(v - 5)]) + "\n")
    return t


# ------------------------------------------------------------------------------------------------
# MiniLM: names, loading into BertModel, parity, round trip
# ------------------------------------------------------------------------------------------------

def test_minilm_variables_are_the_released_names_and_shapes(minilm_tf):
    config = modeling.BertConfig.from_json_file(os.path.join(minilm_tf, "bert_config.json"))
    assert config.hidden_act == "gelu_exact"  # HF "gelu" is the erf form.
    expected = modeling.checkpoint_variable_names(config, with_pretraining_heads=False)
    actual = dict(tf.train.list_variables(os.path.join(minilm_tf, "bert_model.ckpt")))
    assert {k: list(v) for k, v in actual.items()} == dict(expected)
    assert sorted(os.listdir(minilm_tf)) == ["bert_config.json",
                                             "bert_model.ckpt.data-00000-of-00001",
                                             "bert_model.ckpt.index", "vocab.txt"]


def test_minilm_bert_model_matches_numpy_forward_of_original(minilm_tf, minilm_dir, minilm_inputs):
    input_ids, input_mask, token_type_ids = minilm_inputs
    ckpt = os.path.join(minilm_tf, "bert_model.ckpt")
    config = modeling.BertConfig.from_json_file(os.path.join(minilm_tf, "bert_config.json"))
    with tf.Graph().as_default():
        model = modeling.BertModel(config, is_training=False,
                                   input_ids=tf.constant(input_ids),
                                   input_mask=tf.constant(input_mask),
                                   token_type_ids=tf.constant(token_type_ids))
        tvars = tf1.global_variables()
        assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(tvars, ckpt)
        not_loaded = [v.name for v in tvars if v.name not in initialized]
        assert not_loaded == []
        tf1.train.init_from_checkpoint(ckpt, assignment_map)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sequence, layers, pooled = sess.run([model.get_sequence_output(),
                                                 model.get_all_encoder_layers(),
                                                 model.get_pooled_output()])

    hf_config = read_json(os.path.join(minilm_dir, "config.json"))
    original = load_file(os.path.join(minilm_dir, "model.safetensors"))
    ref = numpy_bert.forward(original, hf_config, input_ids, input_mask, token_type_ids)
    real = input_mask.astype(bool)  # Padding positions are not compared (nobody reads them).
    seq_err = np.abs(sequence - ref["sequence_output"])[real].max()
    layer_err = max(np.abs(a - b)[real].max() for a, b in zip(layers, ref["all_layers"]))
    pooled_err = np.abs(pooled - ref["pooled_output"]).max()
    emb_err = np.abs(numpy_bert.sentence_embedding(sequence, input_mask)
                     - numpy_bert.sentence_embedding(ref["sequence_output"], input_mask)).max()
    print(f"\nMiniLM parity (TF float32 vs NumPy float64 of the original weights): "
          f"sequence {seq_err:.2e}, all layers {layer_err:.2e}, pooled {pooled_err:.2e}, "
          f"sentence embedding {emb_err:.2e}")
    assert len(layers) == 6
    assert seq_err < PARITY_TOLERANCE
    assert layer_err < PARITY_TOLERANCE
    assert pooled_err < PARITY_TOLERANCE
    assert emb_err < PARITY_TOLERANCE

    # The activation mapping matters: reading the config the reference way (tanh GELU) is measurably
    # different, so the parity above really checks "gelu" -> "gelu_exact".
    tanh_ref = numpy_bert.forward(original, dict(hf_config, hidden_act="gelu_new"), input_ids,
                                  input_mask, token_type_ids)
    assert np.abs(sequence - tanh_ref["sequence_output"])[real].max() > 10 * PARITY_TOLERANCE


def test_minilm_round_trip_is_bitwise_identical(minilm_tf, minilm_dir, repo_root, tmp_path):
    out = str(tmp_path / "minilm_hf")
    result = run_converter(repo_root, "--to_hf",
                           f"--init_checkpoint={os.path.join(minilm_tf, 'bert_model.ckpt')}",
                           f"--bert_config_file={os.path.join(minilm_tf, 'bert_config.json')}",
                           f"--vocab_file={os.path.join(minilm_tf, 'vocab.txt')}",
                           f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    original = load_file(os.path.join(minilm_dir, "model.safetensors"))
    back = load_file(os.path.join(out, "model.safetensors"))
    # position_ids is a buffer (0..511), not a weight; current transformers neither saves nor needs
    # it.
    assert set(back) == set(original) - {"embeddings.position_ids"}
    for name, value in back.items():
        assert value.dtype == original[name].dtype and value.shape == original[name].shape, name
        assert value.tobytes() == original[name].tobytes(), name
    with safe_open(os.path.join(out, "model.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt"}  # transformers refuses files without it.
    hf_config = read_json(os.path.join(out, "config.json"))
    original_config = read_json(os.path.join(minilm_dir, "config.json"))
    assert hf_config["architectures"] == ["BertModel"]
    for key in convert_checkpoint.BERT_CONFIG_KEYS + ("model_type", "layer_norm_eps"):
        assert hf_config[key] == original_config[key], key
    with open(os.path.join(out, "vocab.txt"), "rb") as a, \
            open(os.path.join(minilm_dir, "vocab.txt"), "rb") as b:
        assert a.read() == b.read()


# ------------------------------------------------------------------------------------------------
# Tiny synthetic models: heads, prefixes, old names, fine-tuned checkpoints
# ------------------------------------------------------------------------------------------------

def test_pretraining_heads_convert_and_round_trip(tmp_path):
    hf_dir = str(tmp_path / "hf")
    original = tiny_hf_model(hf_dir, tied_decoder_copies=True)
    out = str(tmp_path / "tf")
    convert_checkpoint.from_hf(hf_dir, out)
    variables = checkpoint_arrays(os.path.join(out, "bert_model.ckpt"))
    config = modeling.BertConfig.from_json_file(os.path.join(out, "bert_config.json"))
    assert config.hidden_act == "gelu"  # HF gelu_new is our tanh GELU.
    expected = modeling.checkpoint_variable_names(config, with_pretraining_heads=True)
    assert {k: list(v.shape) for k, v in variables.items()} == dict(expected)
    # Orientation: dense kernels are transposed, the NSP output_weights keep [2, H].
    np.testing.assert_array_equal(variables["cls/predictions/transform/dense/kernel"],
                                  original["cls.predictions.transform.dense.weight"].T)
    np.testing.assert_array_equal(variables["cls/seq_relationship/output_weights"],
                                  original["cls.seq_relationship.weight"])
    np.testing.assert_array_equal(variables["bert/encoder/layer_1/intermediate/dense/kernel"],
                                  original["bert.encoder.layer.1.intermediate.dense.weight"].T)

    # The converted heads compute what the original ones do (NumPy on both namings).
    ids = np.array([[2, 7, 9, 11, 3, 0], [2, 8, 8, 4, 5, 3]])
    mask = np.array([[1, 1, 1, 1, 1, 0], [1] * 6])
    types = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]])
    hf_config = read_json(os.path.join(hf_dir, "config.json"))
    ref = numpy_bert.forward(original, hf_config, ids, mask, types)
    ours = numpy_bert.forward(variables, config.to_dict(), ids, mask, types, convention="bert")
    np.testing.assert_allclose(numpy_bert.mlm_logits(variables, config.to_dict(),
                                                     ours["sequence_output"], convention="bert"),
                               numpy_bert.mlm_logits(original, hf_config, ref["sequence_output"]),
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(numpy_bert.nsp_logits(variables, ours["pooled_output"]),
                               numpy_bert.nsp_logits(original, ref["pooled_output"]),
                               rtol=0, atol=1e-9)

    back_dir = str(tmp_path / "back")
    convert_checkpoint.to_hf(os.path.join(out, "bert_model.ckpt"),
                             os.path.join(out, "bert_config.json"), os.path.join(out, "vocab.txt"),
                             back_dir)
    back = load_file(os.path.join(back_dir, "model.safetensors"))
    # The tied decoder copies and the position_ids buffer are not stored; everything else is.
    dropped = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
               "bert.embeddings.position_ids"}
    assert set(back) == set(original) - dropped
    for name, value in back.items():
        assert value.tobytes() == original[name].tobytes(), name
    back_config = read_json(os.path.join(back_dir, "config.json"))
    assert back_config["architectures"] == ["BertForPreTraining"]
    assert back_config["hidden_act"] == "gelu_new"


def test_no_prefix_and_old_layer_norm_spellings(tmp_path):
    hf_dir = str(tmp_path / "hf")
    original = tiny_hf_model(hf_dir, with_heads=False, prefix="", old_layer_norm_names=True,
                             hidden_act="relu")
    out = str(tmp_path / "tf")
    convert_checkpoint.from_hf(hf_dir, out)
    variables = checkpoint_arrays(os.path.join(out, "bert_model.ckpt"))
    assert len(variables) == 5 + 16 * TINY["num_hidden_layers"] + 2
    np.testing.assert_array_equal(variables["bert/encoder/layer_0/output/LayerNorm/gamma"],
                                  original["encoder.layer.0.output.LayerNorm.gamma"])
    np.testing.assert_array_equal(variables["bert/embeddings/LayerNorm/beta"],
                                  original["embeddings.LayerNorm.beta"])
    assert read_json(os.path.join(out, "bert_config.json"))["hidden_act"] == "relu"


def write_fine_tuned_checkpoint(variables, prefix, num_labels=3):
    """Saves `variables` plus what a run_classifier checkpoint adds, with a plain tf1 Saver."""
    extra = {"output_weights": np.ones([num_labels, TINY["hidden_size"]], np.float32),
             "output_bias": np.zeros([num_labels], np.float32)}
    with tf.Graph().as_default():
        tf_vars = []
        for name, value in list(variables.items()) + list(extra.items()):
            tf_vars.append(tf1.get_variable(name, initializer=tf.constant(value)))
            for slot in ("adam_m", "adam_v"):
                tf_vars.append(tf1.get_variable(f"{name}/{slot}", initializer=tf.zeros_like(value)))
        tf_vars.append(tf1.train.get_or_create_global_step())
        saver = tf1.train.Saver(tf_vars)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return saver.save(sess, prefix, global_step=7)


def test_fine_tuned_checkpoint_to_hf_skips_optimizer_and_classifier(tmp_path):
    hf_dir = str(tmp_path / "hf")
    original = tiny_hf_model(hf_dir, with_heads=False, prefix="")
    tf_dir = str(tmp_path / "tf")
    convert_checkpoint.from_hf(hf_dir, tf_dir)
    variables = checkpoint_arrays(os.path.join(tf_dir, "bert_model.ckpt"))
    ckpt = write_fine_tuned_checkpoint(variables, str(tmp_path / "run" / "model.ckpt"))

    out = str(tmp_path / "out")
    _, skipped = convert_checkpoint.to_hf(str(tmp_path / "run"),  # A directory: latest ckpt.
                                          os.path.join(tf_dir, "bert_config.json"),
                                          os.path.join(tf_dir, "vocab.txt"), out)
    assert ckpt.endswith("model.ckpt-7")
    assert skipped["classifier head"] == ["output_bias", "output_weights"]
    assert skipped["training state"] == ["global_step"]
    assert len(skipped["optimizer slots"]) == 2 * (len(variables) + 2)
    back = load_file(os.path.join(out, "model.safetensors"))
    assert set(back) == set(original) - {"embeddings.position_ids"}
    for name, value in back.items():
        assert value.tobytes() == original[name].tobytes(), name
    assert read_json(os.path.join(out, "config.json"))["architectures"] == ["BertModel"]


def test_pytorch_bin_is_read_with_torch_or_refused_without(tmp_path):
    hf_dir = str(tmp_path / "hf")
    original = tiny_hf_model(hf_dir, tied_decoder_copies=True)
    os.remove(os.path.join(hf_dir, "model.safetensors"))
    try:
        import torch
    except ImportError:
        open(os.path.join(hf_dir, "pytorch_model.bin"), "wb").close()
        with pytest.raises(cli.UsageError, match="needs PyTorch"):
            convert_checkpoint.from_hf(hf_dir, str(tmp_path / "out"))
        assert not os.path.exists(tmp_path / "out")
        return
    torch.save({k: torch.from_numpy(v) for k, v in original.items()},
               os.path.join(hf_dir, "pytorch_model.bin"))
    variables = convert_checkpoint.from_hf(hf_dir, str(tmp_path / "out"))
    np.testing.assert_array_equal(variables["bert/pooler/dense/kernel"],
                                  original["bert.pooler.dense.weight"].T)


def test_bfloat16_and_float16_files_become_float32(tmp_path):
    from safetensors.tensorflow import save_file as save_file_tf

    hf_dir = str(tmp_path / "hf")
    original = tiny_hf_model(hf_dir, with_heads=False, prefix="")
    for dtype in (tf.bfloat16, tf.float16):
        save_file_tf({k: tf.cast(v, dtype) if v.dtype == np.float32 else tf.constant(v)
                      for k, v in original.items()},
                     os.path.join(hf_dir, "model.safetensors"), metadata={"format": "pt"})
        variables = convert_checkpoint.from_hf(hf_dir, str(tmp_path / "out"))
        kernel = variables["bert/encoder/layer_0/attention/self/value/kernel"]
        assert kernel.dtype == np.float32
        expected = tf.cast(tf.cast(original["encoder.layer.0.attention.self.value.weight"].T,
                                   dtype), tf.float32).numpy()
        np.testing.assert_array_equal(kernel, expected)
        assert not np.array_equal(kernel, original["encoder.layer.0.attention.self.value.weight"].T)


# ------------------------------------------------------------------------------------------------
# Errors: one line, exit 1, nothing written
# ------------------------------------------------------------------------------------------------

def _edit_config(hf_dir, **changes):
    path = os.path.join(hf_dir, "config.json")
    config = read_json(path)
    config.update(changes)
    write_json(config, path)


def _edit_tensors(hf_dir, drop=(), **replace):
    path = os.path.join(hf_dir, "model.safetensors")
    tensors = {k: v for k, v in load_file(path).items() if k not in drop}
    tensors.update({k.replace("__", "."): v for k, v in replace.items()})
    save_file(tensors, path, metadata={"format": "pt"})


def _append_line(path):
    with open(path, "a") as f:
        f.write("extra\n")


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_cli_error_prints_one_line_exits_1_and_writes_nothing(tmp_path, repo_root):
    hf_dir = str(tmp_path / "hf")
    tiny_hf_model(hf_dir)
    _edit_config(hf_dir, intermediate_size=40)
    parent = tmp_path / "parent"
    result = run_converter(repo_root, f"--from_hf={hf_dir}", f"--output_dir={parent / 'out'}")
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    expected = ("ERROR: tensor encoder.layer.0.intermediate.dense.weight has shape [37, 32] but "
                "config.json implies [40, 32]")
    assert error_lines == [expected], result.stderr
    assert "Traceback" not in result.stderr
    assert not parent.exists()


# The same UsageError path as above, raised in-process to keep the test file fast.
IN_PROCESS_ERRORS = {
    "unknown_architecture": (lambda d: _edit_config(d, model_type="roberta",
                                                    architectures=["RobertaModel"]),
                             "only BERT models"),
    "bert_type_with_other_architecture": (
        lambda d: _edit_config(d, architectures=["ElectraForPreTraining"]), "only BERT models"),
    "missing_tensor": (lambda d: _edit_tensors(
        d, drop=["bert.encoder.layer.1.attention.self.key.weight"]),
        "tensor encoder.layer.1.attention.self.key.weight is missing"),
    "missing_layer": (lambda d: _edit_config(d, num_hidden_layers=3),
                      "tensor encoder.layer.2.attention.self.query.weight is missing"),
    "wrong_shape": (lambda d: _edit_config(d, vocab_size=120),
                    "has shape [99, 32] but config.json implies [120, 32]"),
    "unknown_tensor": (lambda d: _edit_tensors(d, classifier__weight=np.ones([3, 32], np.float32)),
                       "unknown tensors classifier.weight"),
    "unknown_activation": (lambda d: _edit_config(d, hidden_act="silu"), "hidden_act='silu'"),
    "relative_positions": (lambda d: _edit_config(d, position_embedding_type="relative_key"),
                           "position_embedding_type"),
    "other_layer_norm_eps": (lambda d: _edit_config(d, layer_norm_eps=1e-5), "layer_norm_eps"),
    "untied_decoder": (lambda d: _edit_tensors(
        d, cls__predictions__decoder__weight=np.ones([99, 32], np.float32)), "not tied"),
    "no_pooler": (lambda d: _edit_tensors(d, drop=["bert.pooler.dense.weight",
                                                   "bert.pooler.dense.bias"]),
                  "--allow_missing_pooler"),
    "vocab_larger_than_table": (lambda d: _append_line(os.path.join(d, "vocab.txt")),
                                "has 100 entries but vocab_size is 99"),
    "no_weights_file": (lambda d: os.remove(os.path.join(d, "model.safetensors")),
                        "has no model.safetensors"),
    "corrupt_weights_file": (lambda d: _truncate(os.path.join(d, "model.safetensors")),
                             "cannot read"),
}


@pytest.mark.parametrize("case", sorted(IN_PROCESS_ERRORS))
def test_from_hf_refuses_what_it_does_not_understand(case, tmp_path):
    hf_dir = str(tmp_path / "hf")
    tiny_hf_model(hf_dir)
    corrupt, message = IN_PROCESS_ERRORS[case]
    corrupt(hf_dir)
    with pytest.raises(cli.UsageError, match=message.replace("[", r"\[").replace("(", r"\(")) \
            as error:
        convert_checkpoint.from_hf(hf_dir, str(tmp_path / "parent" / "out"))
    assert "\n" not in str(error.value)
    assert not (tmp_path / "parent").exists()


def test_escape_hatches_for_pooler_and_unknown_tensors(tmp_path):
    hf_dir = str(tmp_path / "hf")
    tiny_hf_model(hf_dir)
    _edit_tensors(hf_dir, drop=["bert.pooler.dense.weight", "bert.pooler.dense.bias"],
                  classifier__weight=np.ones([3, 32], np.float32))
    variables = convert_checkpoint.from_hf(hf_dir, str(tmp_path / "out"),
                                           allow_missing_pooler=True, ignore_unknown_tensors=True)
    assert not any(n.startswith("bert/pooler/") for n in variables)
    assert "classifier.weight" not in variables and "output_weights" not in variables


def test_to_hf_refuses_mismatched_config(tmp_path):
    hf_dir = str(tmp_path / "hf")
    tiny_hf_model(hf_dir, with_heads=False)
    tf_dir = str(tmp_path / "tf")
    convert_checkpoint.from_hf(hf_dir, tf_dir)
    config = read_json(os.path.join(tf_dir, "bert_config.json"))
    wrong = str(tmp_path / "wrong_config.json")
    write_json(dict(config, num_hidden_layers=1), wrong)
    with pytest.raises(cli.UsageError, match="encoder.layer_1.* is not part of a BERT encoder"):
        convert_checkpoint.to_hf(os.path.join(tf_dir, "bert_model.ckpt"), wrong,
                                 os.path.join(tf_dir, "vocab.txt"), str(tmp_path / "out"))
    write_json(dict(config, hidden_size=48, num_attention_heads=4), wrong)
    with pytest.raises(cli.UsageError, match="has shape .* but the bert_config_file implies"):
        convert_checkpoint.to_hf(os.path.join(tf_dir, "bert_model.ckpt"), wrong,
                                 os.path.join(tf_dir, "vocab.txt"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_output_dir_with_foreign_files_is_left_alone_but_earlier_output_is_replaced(tmp_path):
    hf_dir = str(tmp_path / "hf")
    tiny_hf_model(hf_dir, with_heads=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(cli.UsageError, match="already holds other files"):
        convert_checkpoint.from_hf(hf_dir, str(out))
    assert os.listdir(out) == ["notes.txt"]
    (out / "notes.txt").unlink()
    convert_checkpoint.from_hf(hf_dir, str(out))
    first = checkpoint_arrays(str(out / "bert_model.ckpt"))
    tiny_hf_model(hf_dir, seed=1, with_heads=False)
    convert_checkpoint.from_hf(hf_dir, str(out))  # Replaces the earlier conversion.
    second = checkpoint_arrays(str(out / "bert_model.ckpt"))
    assert not np.array_equal(first["bert/pooler/dense/bias"], second["bert/pooler/dense/bias"])
    assert sorted(os.listdir(tmp_path)) == ["hf", "out"]  # No temporary leftovers.
