"""End-to-end tests of run_squad.py: tiny runs on the sample data, bad flags, and real learning.

The tiny runs (a 2-layer, hidden-32 model with the released English vocab) check the wiring: the
prediction files equal what the reference's write_predictions (tests/reference_squad.py) makes from
the same checkpoint's logits, the official metrics land in eval_results.txt, early stopping keeps
the best checkpoint, and the export's QAPredictor answers like predictions.json. The learning test
converts the real all-MiniLM-L6-v2 with convert_checkpoint.py, fine-tunes it on questions made from
real news text (gensim's lee_background.cor) and compares its F1 with heuristic baselines scored
the same way.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import inference
import modeling
import tokenization
from tasks import squad
from tests import artifacts
from tests import reference_squad as ref

REPO_ROOT = artifacts.REPO_ROOT
SAMPLE_DIR = os.path.join(REPO_ROOT, "sample_data", "squad")
TINY_CONFIG = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
               "num_attention_heads": 2, "intermediate_size": 37, "max_position_embeddings": 64,
               "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}
WINDOW_FLAGS = ["--max_seq_length=64", "--doc_stride=32", "--max_query_length=16"]


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)  # It would turn the one-line errors into tracebacks.
    return env


def _start(args):
    return subprocess.Popen([sys.executable, "run_squad.py"] + args, cwd=REPO_ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(arg_lists, timeout=600):
    processes = [_start(args) for args in arg_lists]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=timeout)
        results.append((process.returncode, stdout, stderr))
    return results


def _read_results(path):
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition(" = ")
            results[key] = float(value) if value != "None" else None
    return results


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, english_vocab):
    directory = tmp_path_factory.mktemp("tiny")
    config = str(directory / "bert_config.json")
    with open(config, "w") as f:
        json.dump(TINY_CONFIG, f)
    return {"config": config, "vocab": english_vocab,
            "flags": [f"--bert_config_file={config}", f"--vocab_file={english_vocab}"]}


@pytest.fixture(scope="module")
def tiny_runs(tiny, tmp_path_factory):
    """Two tiny runs at once: SQuAD 1.1 train/predict/eval, and 2.0 with early stopping + export."""
    v1 = str(tmp_path_factory.mktemp("v1"))
    v2 = str(tmp_path_factory.mktemp("v2"))
    common = tiny["flags"] + WINDOW_FLAGS + ["--train_batch_size=8", "--predict_batch_size=16",
                                             "--tf_random_seed=1", "--learning_rate=1e-3"]
    results = _run([
        common + [f"--output_dir={v1}", f"--train_file={SAMPLE_DIR}/train-v1.1.json",
                  f"--predict_file={SAMPLE_DIR}/dev-v1.1.json", "--do_train", "--do_predict",
                  "--do_eval", "--num_train_epochs=2"],
        common + [f"--output_dir={v2}", f"--train_file={SAMPLE_DIR}/train-v2.0.json",
                  f"--predict_file={SAMPLE_DIR}/dev-v2.0.json", "--version_2_with_negative",
                  "--do_train", "--do_eval", "--do_predict", "--do_export",
                  "--num_train_epochs=2", "--save_checkpoints_steps=4",
                  "--max_steps_without_decrease=100"],
    ])
    for returncode, _, stderr in results:
        assert returncode == 0, stderr[-3000:]
    return {"v1": v1, "v2": v2, "v1_log": results[0][2], "v2_log": results[1][2]}


def _reference_outputs(output_dir, checkpoint, predict_file, version_2, tiny, tmp_path):
    """What the reference's write_predictions writes from this checkpoint's logits."""
    tokenizer = tokenization.FullTokenizer(tiny["vocab"], do_lower_case=True)
    examples, _ = ref.read_squad_examples(predict_file, False, version_2)
    features = []
    ref.convert_examples_to_features(examples, tokenizer, 64, 32, 16, False, features.append)
    config = modeling.BertConfig.from_json_file(tiny["config"])
    with inference.InferenceModel(config, checkpoint, squad.SQUAD_HEAD.build) as model:
        outputs = model.run({"input_ids": np.array([f.input_ids for f in features], np.int32),
                             "input_mask": np.array([f.input_mask for f in features], np.int32),
                             "segment_ids": np.array([f.segment_ids for f in features],
                                                     np.int32)})
    results = [ref.RawResult(f.unique_id, [float(x) for x in outputs["start_logits"][i]],
                             [float(x) for x in outputs["end_logits"][i]])
               for i, f in enumerate(features)]
    return ref.write_predictions(examples, features, results, 20, 30, True, None, None, None,
                                 version_2_with_negative=version_2)


def _assert_close_json(ours, theirs, tolerance=1e-5):
    """Equal structure and texts; floats within tolerance."""
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)
        for key in theirs:
            _assert_close_json(ours[key], theirs[key], tolerance)
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_close_json(a, b, tolerance)
    elif isinstance(theirs, float):
        assert ours == pytest.approx(theirs, abs=tolerance)
    else:
        assert ours == theirs


@pytest.mark.slow
def test_v1_prediction_files_equal_the_reference_and_metrics(tiny_runs, tiny, tmp_path):
    out = tiny_runs["v1"]
    checkpoint = tf.train.latest_checkpoint(out)
    predictions, nbest, _ = _reference_outputs(out, checkpoint, f"{SAMPLE_DIR}/dev-v1.1.json",
                                               False, tiny, tmp_path)
    _assert_close_json(_load(os.path.join(out, "predictions.json")), predictions)
    _assert_close_json(_load(os.path.join(out, "nbest_predictions.json")), nbest)
    assert not os.path.exists(os.path.join(out, "null_odds.json"))
    # The reference's layout: json.dumps(indent=4) and a newline.
    with open(os.path.join(out, "predictions.json"), encoding="utf-8") as f:
        text = f.read()
    assert text == json.dumps(_load(os.path.join(out, "predictions.json")), indent=4) + "\n"
    results = _read_results(os.path.join(out, "eval_results.txt"))
    assert sorted(results) == ["exact_match", "f1", "global_step"]
    dev = _load(f"{SAMPLE_DIR}/dev-v1.1.json")["data"]
    expected = ref.evaluate_v1(dev, _load(os.path.join(out, "predictions.json")))
    assert results["f1"] == pytest.approx(expected["f1"])
    assert results["global_step"] == int(42 / 8 * 2)  # Examples, not windows, as the reference.
    log = tiny_runs["v1_log"]
    assert "Num orig examples = 42" in log and "Num split examples" in log


@pytest.mark.slow
def test_v2_early_stopping_export_and_predictor(tiny_runs, tiny, tmp_path):
    out = tiny_runs["v2"]
    best = tf.train.latest_checkpoint(os.path.join(out, "best"))
    assert best is not None
    predictions, nbest, null_odds = _reference_outputs(
        out, best, f"{SAMPLE_DIR}/dev-v2.0.json", True, tiny, tmp_path)
    _assert_close_json(_load(os.path.join(out, "predictions.json")), predictions)
    _assert_close_json(_load(os.path.join(out, "nbest_predictions.json")), nbest)
    _assert_close_json(_load(os.path.join(out, "null_odds.json")), null_odds)
    results = _read_results(os.path.join(out, "eval_results.txt"))
    for key in ("exact", "f1", "total", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
                "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh", "global_step"):
        assert key in results
    assert results["total"] == 16 and results["NoAns_total"] == 3
    best_info = _load(os.path.join(out, "best", "best_checkpoint.json"))
    assert best_info["metric"] == "f1" and results["f1"] == pytest.approx(best_info["value"])
    assert "Evaluation at step 4:" in tiny_runs["v2_log"]

    # The export answers the dev questions as predictions.json does (same checkpoint, windows).
    saved_model = os.path.join(out, "export", "saved_model")
    predictor = squad.QAPredictor(saved_model, doc_stride=32, max_query_length=16,
                                  version_2_with_negative=True)
    assert isinstance(inference.load_predictor(saved_model), squad.QAPredictor)
    pairs, ids = [], []
    for article in _load(f"{SAMPLE_DIR}/dev-v2.0.json")["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                pairs.append((qa["question"], paragraph["context"]))
                ids.append(qa["id"])
    answers = predictor.predict(pairs)
    assert [a["answer"] for a in answers] == [predictions[i] for i in ids]
    for answer, qas_id in zip(answers, ids):
        assert answer["null_odds"] == pytest.approx(null_odds[qas_id], abs=1e-4)
    # Contexts of any length: this one needs many windows.
    long_context = " ".join(paragraph["context"] for article in _load(
        f"{SAMPLE_DIR}/train-v1.1.json")["data"] for paragraph in article["paragraphs"])
    (long_answer,) = predictor.predict([("Who was the engineer of the line?", long_context)])
    assert long_answer["answer"] in long_context or long_answer["answer"] in ("", "empty")
    with pytest.raises(ValueError, match="empty question"):
        predictor.predict([("  ", "context")])


def test_help_shows_own_and_shared_flags_only():
    (returncode, stdout, stderr), = _run([["--helpfull"]])
    text = stdout + stderr
    for name in ("doc_stride", "max_query_length", "n_best_size", "max_answer_length",
                 "version_2_with_negative", "null_score_diff_threshold", "verbose_logging",
                 "do_eval", "strict_answers", "use_tpu", "num_tpu_cores",
                 "max_steps_without_decrease", "do_export", "num_gpus", "train_file"):
        assert f"--{name}" in text or f"--[no]{name}" in text, name
    assert "task_name" not in text and "data_dir" not in text
    assert "default: '384'" in text and "default: 'f1'" in text


@pytest.mark.slow
def test_bad_input_and_flags_exit_1_with_one_line_and_write_nothing(tiny, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"data": [{"paragraphs": [')
    unanswerable_v1 = tmp_path / "dev_no_answer.json"
    unanswerable_v1.write_text(json.dumps({"data": [{"paragraphs": [{
        "context": "Anna built it.", "qas": [{"id": "x1", "question": "Who?", "answers": []}]}]}]}))
    train = f"--train_file={SAMPLE_DIR}/train-v1.1.json"
    dev = f"--predict_file={SAMPLE_DIR}/dev-v1.1.json"
    cases = [
        ([], "At least one of `do_train`, `do_predict`"),
        (["--do_train"], "--train_file is needed"),
        (["--do_predict"], "--predict_file is needed"),
        (["--do_train", train, "--max_seq_length=20", "--max_query_length=17"],
         "must be greater than max_query_length (17) + 3"),
        (["--do_train", train, "--max_seq_length=128"], "max_position_embeddings"),
        (["--do_train", train, "--max_steps_without_decrease=10"],
         "--max_steps_without_decrease needs --do_train=true and --do_eval=true"),
        (["--do_train", "--do_eval", train, dev, "--max_steps_without_decrease=10",
          "--early_stopping_metric=HasAns_f1"], "choose one of exact_match, f1"),
        (["--do_train", f"--train_file={bad_json}"], f"{bad_json} is not valid JSON"),
        (["--do_eval", f"--predict_file={unanswerable_v1}"],
         "question 'x1' has no answer; SQuAD 1.1 evaluation needs at least one"),
        (["--do_predict", "--predict_file=/nonexistent.json"], "no such file"),
    ]
    arg_lists, outputs = [], []
    for index, (args, _) in enumerate(cases):
        output_dir = tmp_path / f"out{index}"
        outputs.append(output_dir)
        arg_lists.append(tiny["flags"] + WINDOW_FLAGS + [f"--output_dir={output_dir}"] + args)
    for (returncode, _, stderr), (args, message), output_dir in zip(_run(arg_lists), cases,
                                                                    outputs):
        lines = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
        assert returncode == 1, (args, stderr[-2000:])
        assert len(lines) == 1 and message in lines[0], (args, lines)
        left = os.listdir(output_dir) if os.path.isdir(output_dir) else []
        assert not [name for name in left if name.endswith((".json", ".tf_record"))], left


# ------------------------------------------------------------------------------------------------
# Learning: real MiniLM weights on questions about real news text
# ------------------------------------------------------------------------------------------------

def _words(text):
    return [w.strip(ref._EDGE_PUNCTUATION).lower() for w in text.split()
            if w.strip(ref._EDGE_PUNCTUATION)]


def heuristic_baselines(data):
    """Two sliding-window baselines, as predictions dicts.

    Both pick the context sentence sharing the most words with the question. "overlap" answers
    with that sentence's words that are not in the question; "first_name" with its first name or
    number (the answer types of these questions) that is not in the question.
    """
    overlap, first_name = {}, {}
    for article in data:
        for paragraph in article["paragraphs"]:
            sentences = ref._SENTENCE_END_RE.split(paragraph["context"])
            for qa in paragraph["qas"]:
                question = set(_words(qa["question"])) - {"what"}
                best = max(sentences, key=lambda s: len(question & set(_words(s))))
                overlap[qa["id"]] = " ".join(
                    w for w in best.split()
                    if w.strip(ref._EDGE_PUNCTUATION).lower() not in question)
                words = best.split()
                names = [" ".join(words[a:b + 1]).strip(ref._EDGE_PUNCTUATION)
                         for a, b in ref._answer_candidates(words)]
                names = [n for n in names if not set(_words(n)) & question]
                first_name[qa["id"]] = names[0] if names else ""
    return {"overlap": overlap, "first_name": first_name}


@pytest.mark.slow
def test_minilm_learns_questions_about_real_text(tmp_path, minilm_tf, gensim_test_data):
    with open(artifacts.news_corpus(), encoding="utf-8") as f:
        documents = f.read().splitlines()
    # Different news documents for training and evaluation.
    train = ref.cloze_squad(documents[:240], 800, seed=1, max_words=60, questions_per_paragraph=2)
    dev = ref.cloze_squad(documents[240:], 150, seed=2, max_words=60, questions_per_paragraph=2,
                          id_prefix="d")
    for name, data in (("train", train), ("dev", dev)):
        with open(tmp_path / f"{name}.json", "w", encoding="utf-8") as f:
            json.dump(data, f)
    model = pathlib.Path(minilm_tf)
    out = tmp_path / "out"
    (returncode, _, stderr), = _run([[
        f"--bert_config_file={model}/bert_config.json", f"--vocab_file={model}/vocab.txt",
        f"--init_checkpoint={model}/bert_model.ckpt", f"--output_dir={out}",
        f"--train_file={tmp_path}/train.json", f"--predict_file={tmp_path}/dev.json",
        "--do_train", "--do_eval", "--do_predict", "--max_seq_length=96", "--doc_stride=48",
        "--max_query_length=20", "--train_batch_size=8", "--learning_rate=1e-4",
        "--num_train_epochs=1", "--predict_batch_size=32", "--tf_random_seed=1"]], timeout=1200)
    assert returncode == 0, stderr[-3000:]
    model_f1 = _read_results(out / "eval_results.txt")["f1"]
    baselines = {name: squad.squad_v1_metrics(dev["data"], predictions)["f1"]
                 for name, predictions in heuristic_baselines(dev["data"]).items()}
    print(f"MiniLM SQuAD-format learning test: F1 {model_f1:.1f}, baselines "
          + ", ".join(f"{name} {value:.1f}" for name, value in baselines.items()))
    # Measured: model ~86, baselines ~15 (overlap) and ~63 (first name).
    assert model_f1 > max(baselines.values()) + 10, (model_f1, baselines)
