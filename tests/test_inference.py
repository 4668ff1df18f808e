"""Tests for inference.py: the one inference path (model, checks, SavedModel layout, Predictor)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import cli
import inference
import modeling
import tokenization
from tasks import classifier

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILE = os.path.join(REPO_ROOT, "sample_data", "pretraining", "bert_config_tiny.json")
VOCAB_FILE = os.path.join(REPO_ROOT, "sample_data", "pretraining", "vocab.txt")
LABELS = ["negative", "positive"]
TEXTS = ["a good film", "这部电影太无聊了。", "The plot ||| the story", ""]


def _save_random(directory, build):
    """Saves freshly initialised variables of the graph `build()` makes; returns the prefix."""
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        build()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(session, os.path.join(directory, "model.ckpt"))


def _inputs(seq_length=None):
    return {name: tf1.placeholder(tf.int32, [None, seq_length], name=name)
            for name in inference.INPUT_NAMES}


@pytest.fixture(scope="module")
def config():
    return modeling.BertConfig.from_json_file(CONFIG_FILE)


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory, config):
    directory = tmp_path_factory.mktemp("classifier")
    return _save_random(str(directory), lambda: classifier.CLASSIFIER_HEAD.build(
        config, _inputs(), len(LABELS)))


def test_model_matches_the_training_graph(config, classifier_checkpoint):
    tokenizer = tokenization.FullTokenizer(VOCAB_FILE, do_lower_case=True)
    batch = inference.texts_to_features(TEXTS, tokenizer, 16)
    # The same rows as the classifier's own feature conversion.
    for row, text in enumerate(TEXTS):
        text_a, text_b = cli.split_pair(text)
        example = classifier.InputExample("t", text_a, text_b, label="negative")
        feature = classifier.convert_single_example(9, example, LABELS, 16, tokenizer)
        assert batch["input_ids"][row].tolist() == feature.input_ids
        assert batch["segment_ids"][row].tolist() == feature.segment_ids
    with inference.InferenceModel(config, classifier_checkpoint, classifier.CLASSIFIER_HEAD.build,
                                  seq_length=16, num_labels=2) as model:
        got = model.run(batch)
        assert model.graph.finalized
    # An independent graph built like the training graph (create_model, not the head function).
    with tf.Graph().as_default():
        placeholders = _inputs(16)
        outputs = classifier.create_model(
            config, False, placeholders["input_ids"], placeholders["input_mask"],
            placeholders["segment_ids"], tf.zeros_like(placeholders["input_ids"][:, 0]), 2, False)
        with tf1.Session() as session:
            tf1.train.Saver().restore(session, classifier_checkpoint)
            want = session.run(outputs.probabilities,
                               {placeholders[name]: batch[name] for name in placeholders})
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-6)


def test_checkpoint_mismatches_are_one_line_errors(tmp_path, config, classifier_checkpoint):
    encoder_only = _save_random(str(tmp_path), lambda: modeling.BertModel(
        config, False, tf1.placeholder(tf.int32, [None, None])))
    with pytest.raises(inference.CheckpointMismatch, match="lacks 2 variable.*output_bias"):
        inference.InferenceModel(config, encoder_only, classifier.CLASSIFIER_HEAD.build,
                                 num_labels=2)
    with pytest.raises(inference.CheckpointMismatch, match="output_weights has shape \\[2, 64\\]"):
        inference.InferenceModel(config, classifier_checkpoint, classifier.CLASSIFIER_HEAD.build,
                                 num_labels=3)
    wide = modeling.BertConfig.from_dict(dict(config.to_dict(), intermediate_size=128))
    with pytest.raises(cli.UsageError, match="pass the config the checkpoint was trained with"):
        inference.InferenceModel(wide, encoder_only, inference.ENCODER_HEAD.build)


def test_optional_variables_keep_their_initial_values(tmp_path, config):
    def without_pooler():
        model = modeling.BertModel(config, False, tf1.placeholder(tf.int32, [None, None]))
        del model
        pooler = [v for v in tf1.global_variables() if v.op.name.startswith("bert/pooler/")]
        for variable in pooler:  # Drop the pooler from the collection the Saver saves.
            tf1.get_collection_ref(tf1.GraphKeys.GLOBAL_VARIABLES).remove(variable)

    checkpoint = _save_random(str(tmp_path), without_pooler)
    with pytest.raises(inference.CheckpointMismatch, match="bert/pooler/dense"):
        inference.InferenceModel(config, checkpoint, inference.ENCODER_HEAD.build)
    with inference.InferenceModel(config, checkpoint, inference.ENCODER_HEAD.build,
                                  optional_prefixes=("bert/pooler/",)) as model:
        out = model.run({name: np.ones([1, 4], np.int32) for name in inference.INPUT_NAMES},
                        fetch=["sequence_output"])
        assert out["sequence_output"].shape == (1, 4, config.hidden_size)


def test_saved_model_layout_and_predictor(tmp_path, config, classifier_checkpoint):
    spec = inference.ExportSpec(task="classifier", bert_config=config,
                                checkpoint=classifier_checkpoint, vocab_file=VOCAB_FILE,
                                do_lower_case=True, max_seq_length=16, labels=LABELS)
    with spec.load_model() as model:
        path = inference.write_saved_model(model, spec, str(tmp_path / "saved_model"),
                                           str(tmp_path / "scratch"))
        want = model.run(inference.texts_to_features(
            TEXTS, tokenization.FullTokenizer(VOCAB_FILE, True), 16))
    assets = sorted(os.listdir(os.path.join(path, "assets")))
    assert assets == ["export_config.json", "labels.txt", "vocab.txt"]
    with open(os.path.join(path, "assets", "export_config.json")) as f:
        export_config = json.load(f)
    assert export_config["predictor"] == "inference:Predictor"
    assert export_config["outputs"] == ["probabilities", "logits"]

    predictor = inference.load_predictor(path, batch_size=3)
    assert type(predictor) is inference.Predictor
    results = predictor.predict(TEXTS)
    np.testing.assert_allclose(np.stack([r["probabilities"] for r in results]),
                               want["probabilities"], atol=1e-6)
    assert [r["label"] for r in results] == [LABELS[i] for i in
                                             want["probabilities"].argmax(axis=1)]
    with pytest.raises(cli.UsageError, match="is not a SavedModel written by"):
        inference.Predictor(str(tmp_path))


def test_unknown_head_is_a_usage_error():
    with pytest.raises(cli.UsageError, match="no inference head 'nope'"):
        inference.get_head("nope")
