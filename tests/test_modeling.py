"""Tests for modeling.py: checkpoint names and shapes, NumPy parity, dropout, config, clear
errors."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import modeling
from tasks import pretraining

tf1 = tf.compat.v1

BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072, type_vocab_size=2)
LARGE = dict(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
             intermediate_size=4096, type_vocab_size=2)
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, type_vocab_size=2, max_position_embeddings=64)


def _graph_variables(config_kwargs, with_heads):
    """Builds the graph a pretraining run builds and returns {name: shape} of its variables."""
    config = modeling.BertConfig(**config_kwargs)
    with tf.Graph().as_default():
        input_ids = tf1.placeholder(tf.int32, [2, 16])
        model = modeling.BertModel(config, is_training=True, input_ids=input_ids)
        if with_heads:
            positions = tf1.placeholder(tf.int32, [2, 3])
            pretraining.get_masked_lm_output(
                config, model.get_sequence_output(), model.get_embedding_table(), positions,
                tf1.placeholder(tf.int32, [2, 3]), tf1.placeholder(tf.float32, [2, 3]))
            pretraining.get_next_sentence_output(
                config, model.get_pooled_output(), tf1.placeholder(tf.int32, [2, 1]))
        return {v.name[:-2]: v.shape.as_list() for v in tf1.global_variables()}


@pytest.mark.parametrize("config_kwargs,count", [(BASE, 206), (LARGE, 398)])
def test_released_variable_names_and_shapes(config_kwargs, count):
    variables = _graph_variables(config_kwargs, with_heads=True)
    expected = modeling.checkpoint_variable_names(modeling.BertConfig(**config_kwargs))
    assert len(expected) == count
    assert variables == dict(expected)
    # Spot checks straight from the released uncased_L-12_H-768_A-12 listing.
    if count == 206:
        assert variables["bert/embeddings/word_embeddings"] == [30522, 768]
        assert variables["bert/encoder/layer_11/intermediate/dense/kernel"] == [768, 3072]
        assert variables["bert/encoder/layer_0/output/dense/kernel"] == [3072, 768]
        assert variables["cls/predictions/output_bias"] == [30522]
        assert variables["cls/seq_relationship/output_weights"] == [2, 768]


def test_encoder_alone_has_no_head_variables():
    variables = _graph_variables(BASE, with_heads=False)
    assert len(variables) == 199
    assert not [n for n in variables if n.startswith("cls/")]


def test_output_shapes():
    config = modeling.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=5,
                                 num_attention_heads=4, intermediate_size=37)
    with tf.Graph().as_default():
        ids = tf.constant(np.random.RandomState(0).randint(0, 99, size=[13, 7]), tf.int32)
        model = modeling.BertModel(config, True, ids, tf.ones_like(ids), tf.zeros_like(ids))
        assert model.get_embedding_output().shape.as_list() == [13, 7, 32]
        assert model.get_sequence_output().shape.as_list() == [13, 7, 32]
        assert model.get_pooled_output().shape.as_list() == [13, 32]
        assert len(model.get_all_encoder_layers()) == 5
        assert model.get_embedding_table().shape.as_list() == [99, 32]


# ---- An independent NumPy implementation of the same equations -----------------------------------


def _np_layer_norm(x, gamma, beta):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * gamma + beta


def _np_gelu(x, exact):
    if exact:
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _np_bert(w, cfg, ids, mask, types):
    """Forward pass from a {checkpoint name: array} dict; returns (all_layers, pooled)."""
    seq = ids.shape[1]
    x = (w["bert/embeddings/word_embeddings"][ids]
         + w["bert/embeddings/token_type_embeddings"][types]
         + w["bert/embeddings/position_embeddings"][:seq][None])
    x = _np_layer_norm(x, w["bert/embeddings/LayerNorm/gamma"], w["bert/embeddings/LayerNorm/beta"])
    heads = cfg["num_attention_heads"]
    size = cfg["hidden_size"] // heads
    adder = (1.0 - mask[:, None, None, :].astype(np.float64)) * -10000.0
    layers = []
    for i in range(cfg["num_hidden_layers"]):
        p = "bert/encoder/layer_%d/" % i

        def lin(t, name):
            return t @ w[p + name + "/kernel"] + w[p + name + "/bias"]

        def split(t):
            return t.reshape(t.shape[0], seq, heads, size).transpose(0, 2, 1, 3)

        q = split(lin(x, "attention/self/query"))
        k = split(lin(x, "attention/self/key"))
        v = split(lin(x, "attention/self/value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + adder
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        attn = _np_layer_norm(lin(context, "attention/output/dense") + x,
                              w[p + "attention/output/LayerNorm/gamma"],
                              w[p + "attention/output/LayerNorm/beta"])
        inter = _np_gelu(lin(attn, "intermediate/dense"), cfg["hidden_act"] == "gelu_exact")
        x = _np_layer_norm(lin(inter, "output/dense") + attn, w[p + "output/LayerNorm/gamma"],
                           w[p + "output/LayerNorm/beta"])
        layers.append(x)
    pooled = np.tanh(x[:, 0] @ w["bert/pooler/dense/kernel"] + w["bert/pooler/dense/bias"])
    return layers, pooled


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_exact"])
def test_outputs_equal_numpy_after_checkpoint_round_trip(tmp_path, hidden_act):
    cfg = dict(TINY, hidden_act=hidden_act)
    config = modeling.BertConfig(**cfg)
    rng = np.random.RandomState(1)
    ids = rng.randint(0, 99, size=[3, 9]).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    types = np.zeros_like(ids)
    types[:, 4:] = 1
    ckpt = str(tmp_path / "bert_model.ckpt")

    # Save a randomly initialised model, with random (non-trivial) LayerNorm parameters too.
    with tf.Graph().as_default(), tf1.Session() as sess:
        modeling.BertModel(config, False, tf.constant(ids))
        sess.run(tf1.global_variables_initializer())
        for v in tf1.global_variables():
            if "LayerNorm" in v.name or v.name.endswith("bias:0"):
                v.load(rng.normal(1.0 if "gamma" in v.name else 0.0, 0.1, v.shape.as_list()), sess)
        tf1.train.Saver().save(sess, ckpt)

    # Reload it into a fresh graph through the same path the runners use.
    with tf.Graph().as_default(), tf1.Session() as sess:
        model = modeling.BertModel(config, False, tf.constant(ids), tf.constant(mask),
                                   tf.constant(types))
        assignment, initialized = modeling.get_assignment_map_from_checkpoint(
            tf1.trainable_variables(), ckpt)
        assert len(assignment) == len(tf1.trainable_variables())
        tf1.train.init_from_checkpoint(ckpt, assignment)
        sess.run(tf1.global_variables_initializer())
        layers, pooled = sess.run([model.get_all_encoder_layers(), model.get_pooled_output()])

    weights = {name: tf.train.load_variable(ckpt, name).astype(np.float64)
               for name, _ in tf.train.list_variables(ckpt)}
    np_layers, np_pooled = _np_bert(weights, cfg, ids, mask, types)
    errors = [np.abs(a - b).max() for a, b in zip(layers, np_layers)]
    errors.append(np.abs(pooled - np_pooled).max())
    print("max abs error vs NumPy (%s): %.3g" % (hidden_act, max(errors)))
    assert max(errors) < 1e-5


def test_dropout_drops_the_configured_fraction():
    with tf.Graph().as_default(), tf1.Session() as sess:
        tf1.set_random_seed(3)
        x = tf.ones([1000, 1000])
        for p in (0.1, 0.5):
            out = sess.run(modeling.dropout(x, p))
            dropped = float((out == 0).mean())
            assert abs(dropped - p) < 0.005, (p, dropped)
            kept = out[out != 0]
            np.testing.assert_allclose(kept, 1.0 / (1.0 - p), rtol=1e-6)
        assert modeling.dropout(x, 0.0) is x


def test_training_mode_applies_dropout_and_eval_mode_does_not():
    config = modeling.BertConfig(**TINY)
    with tf.Graph().as_default(), tf1.Session() as sess:
        ids = tf.constant(np.arange(2 * 8).reshape(2, 8) % 99, tf.int32)
        train = modeling.BertModel(config, True, ids, scope="bert")
        evals = modeling.BertModel(config, False, ids, scope="bert_eval")
        sess.run(tf1.global_variables_initializer())
        # Two separate runs: fetching one tensor twice in the same run returns one value.
        a, b = (sess.run(train.get_sequence_output()) for _ in range(2))
        c, d = (sess.run(evals.get_sequence_output()) for _ in range(2))
        assert np.abs(a - b).max() > 1e-3
        np.testing.assert_array_equal(c, d)


def test_dynamic_batch_and_length():
    config = modeling.BertConfig(**TINY)
    with tf.Graph().as_default(), tf1.Session() as sess:
        ids = tf1.placeholder(tf.int32, [None, None])
        model = modeling.BertModel(config, False, ids)
        sess.run(tf1.global_variables_initializer())
        for shape in ([1, 5], [4, 11]):
            out = sess.run(model.get_sequence_output(), {ids: np.ones(shape, np.int32)})
            assert out.shape == tuple(shape) + (32,)


def test_config_round_trip_keeps_unknown_keys(tmp_path):
    chinese = {"attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu",
               "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
               "intermediate_size": 3072, "max_position_embeddings": 512,
               "num_attention_heads": 12, "num_hidden_layers": 12, "pooler_fc_size": 768,
               "pooler_num_attention_heads": 12, "pooler_num_fc_layers": 3,
               "pooler_size_per_head": 128, "pooler_type": "first_token_transform",
               "type_vocab_size": 2, "vocab_size": 21128}
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(chinese))
    config = modeling.BertConfig.from_json_file(str(path))
    assert config.vocab_size == 21128 and config.pooler_type == "first_token_transform"
    assert json.loads(config.to_json_string()) == chinese
    assert config.to_json_string().endswith("\n")
    defaults = modeling.BertConfig(vocab_size=99, hidden_size=37)
    assert defaults.type_vocab_size == 16 and defaults.hidden_act == "gelu"
    assert json.loads(defaults.to_json_string())["hidden_size"] == 37


def test_activations():
    with tf.Graph().as_default(), tf1.Session() as sess:
        x = tf.constant([-2.0, -0.5, 0.0, 0.7, 3.0])
        xs = np.array([-2.0, -0.5, 0.0, 0.7, 3.0])
        np.testing.assert_allclose(sess.run(modeling.get_activation("gelu")(x)),
                                   _np_gelu(xs, False), atol=1e-6)
        np.testing.assert_allclose(sess.run(modeling.get_activation("GELU_NEW")(x)),
                                   _np_gelu(xs, False), atol=1e-6)
        np.testing.assert_allclose(sess.run(modeling.get_activation("gelu_exact")(x)),
                                   _np_gelu(xs, True), atol=1e-6)
    assert modeling.get_activation("relu") is tf.nn.relu
    assert modeling.get_activation("tanh") is tf.tanh
    assert modeling.get_activation("linear") is None and modeling.get_activation("") is None
    with pytest.raises(ValueError, match="Unsupported activation: swish"):
        modeling.get_activation("swish")


def test_mismatched_checkpoint_names_variable_and_both_shapes(tmp_path):
    ckpt = str(tmp_path / "bert_model.ckpt")
    with tf.Graph().as_default(), tf1.Session() as sess:
        modeling.BertModel(modeling.BertConfig(**TINY), False, tf.ones([1, 4], tf.int32))
        sess.run(tf1.global_variables_initializer())
        tf1.train.Saver().save(sess, ckpt)
    with tf.Graph().as_default():
        modeling.BertModel(modeling.BertConfig(**dict(TINY, vocab_size=120)), False,
                           tf.ones([1, 4], tf.int32))
        with pytest.raises(ValueError) as e:
            modeling.get_assignment_map_from_checkpoint(tf1.trainable_variables(), ckpt)
    message = str(e.value)
    assert "bert/embeddings/word_embeddings" in message
    assert "[99, 32]" in message and "[120, 32]" in message and "\n" not in message


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with tf.Graph().as_default():
        modeling.BertModel(modeling.BertConfig(**TINY), False, tf.ones([1, 4], tf.int32))
        with pytest.raises(ValueError, match="cannot read checkpoint .*--init_checkpoint"):
            modeling.get_assignment_map_from_checkpoint(
                tf1.trainable_variables(), os.path.join(str(tmp_path), "nothing.ckpt"))


def test_sequence_longer_than_position_table_is_a_clear_error():
    with tf.Graph().as_default():
        with pytest.raises(ValueError,
                           match="max_position_embeddings = 64.*--max_seq_length <= 64"):
            modeling.BertModel(modeling.BertConfig(**TINY), False, tf.ones([1, 65], tf.int32))


def test_invalid_config_is_a_clear_error(tmp_path):
    with tf.Graph().as_default():
        bad = modeling.BertConfig(**dict(TINY, num_attention_heads=5))
        with pytest.raises(ValueError, match="not a multiple of num_attention_heads"):
            modeling.BertModel(bad, False, tf.ones([1, 4], tf.int32))
    with pytest.raises(ValueError, match="does not exist: pass --bert_config_file"):
        modeling.BertConfig.from_json_file(str(tmp_path / "missing.json"))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        modeling.BertConfig.from_json_file(str(tmp_path / "broken.json"))
