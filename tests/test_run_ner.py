"""Tests for run_ner.py: every mode end to end on a tiny model, bad input, and a learning test.

The end-to-end runs use a 2-layer model whose vocab holds every basic token of sample_data/ner
(English CoNLL and Chinese character-per-line). The learning test, marked slow, fine-tunes the real
all-MiniLM-L6-v2 (converted with convert_checkpoint.py) to find capitalised multi-word names in
gensim's real news text, and compares its entity F1 with a dictionary lookup of the names seen in
training, measured in the same test, with and without --use_crf.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

import inference
import tokenization
from tasks import ner
from tests import artifacts

REPO_ROOT = artifacts.REPO_ROOT
SAMPLE_DIR = os.path.join(REPO_ROOT, "sample_data", "ner")


def _write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def _run(args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)  # It would turn the one-line errors into tracebacks.
    return subprocess.run([sys.executable, "run_ner.py"] + [str(a) for a in args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _ok(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _read_results(path):
    with open(path, encoding="utf-8") as f:
        return {key: float(value) for key, _, value in
                (line.rstrip("\n").partition(" = ") for line in f)}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, hidden-32 config and a vocab holding every basic token of the NER samples."""
    directory = tmp_path_factory.mktemp("tiny_ner_model")
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    tokens = set()
    for language in ("en", "zh"):
        for split in ("train", "dev", "test"):
            with open(os.path.join(SAMPLE_DIR, language, f"{split}.txt"), encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        tokens.update(basic.tokenize(line.split()[0]))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(tokens)
    vocab_file = _write(directory / "vocab.txt", "".join(t + "\n" for t in vocab))
    config = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64,
              "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}
    config_file = _write(directory / "bert_config.json", json.dumps(config))
    return [f"--vocab_file={vocab_file}", f"--bert_config_file={config_file}"]


def _check_prediction_files(output_dir, test_file):
    """The CoNLL and JSONL predictions cover every token of the test file, in order."""
    gold = ner.read_conll(test_file, split="test", require_labels=False)
    predicted = ner.read_conll(os.path.join(output_dir, "test_predictions.txt"))
    assert [s.tokens for s in predicted] == [s.tokens for s in gold]
    with open(os.path.join(output_dir, "test_predictions.txt"), encoding="utf-8") as f:
        widths = {len(line.split()) for line in f if line.strip()}
    assert widths == ({3} if gold[0].labels else {2})  # token (gold) predicted
    with open(os.path.join(output_dir, "test_predictions.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == len(gold)
    for record, sentence, labels in zip(records, gold, predicted):
        assert record["text"] == sentence.text
        assert [(e["type"], e["token_start"], e["token_end"]) for e in record["entities"]] == \
            ner.extract_entities(labels.labels)
        for entity in record["entities"]:
            assert record["text"][entity["start"]:entity["end"]] == entity["text"]
    return predicted


def test_train_eval_predict_export_and_serve_english(tiny_model, tmp_path):
    """All four modes in one run (early stopping on entity F1), then the export's predictor."""
    output_dir = tmp_path / "en"
    _ok(_run(tiny_model + [
        f"--data_dir={SAMPLE_DIR}/en", f"--output_dir={output_dir}", "--do_train", "--do_eval",
        "--do_predict", "--do_export", "--max_seq_length=24", "--train_batch_size=16",
        "--num_train_epochs=3", "--learning_rate=2e-3", "--save_checkpoints_steps=15",
        "--max_steps_without_decrease=100", "--tf_random_seed=3"]))
    results = _read_results(output_dir / "eval_results.txt")
    labels = inference.read_labels_file(str(output_dir))
    assert labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert set(results) == set(ner.eval_metric_names(labels))
    assert results["eval_f1"] > 0.3  # a tiny model from scratch, 45 steps: far above chance
    assert os.listdir(output_dir / "best")
    predicted = _check_prediction_files(str(output_dir), f"{SAMPLE_DIR}/en/test.txt")
    assert all(ner.is_valid_sequence(s.labels, "bio") for s in predicted)
    assert "FB1" in (output_dir / "test_conlleval.txt").read_text()

    # The export decodes as the run did: same labels for the test sentences whose words the
    # predictor's own splitting reproduces.
    predictor = inference.load_predictor(str(output_dir / "export" / "saved_model"))
    assert isinstance(predictor, ner.NerPredictor)
    sentences = ner.read_conll(f"{SAMPLE_DIR}/en/test.txt")
    results = predictor.predict([s.text for s in sentences])
    compared = 0
    for sentence, result, run_labels in zip(sentences, results, predicted):
        if result["tokens"] == sentence.tokens:
            assert result["labels"] == run_labels.labels
            compared += 1
    assert compared > 40
    long_text = " ".join(sentences[1].text for _ in range(10))  # several windows of 24 pieces
    [result] = predictor.predict([long_text])
    assert len(result["labels"]) == 10 * len(sentences[1].tokens)
    assert ner.is_valid_sequence(result["labels"], "bio")


def test_crf_on_chinese_characters_with_windows_then_eval_and_predict_only(tiny_model, tmp_path):
    """--use_crf on the character-per-line sample, with windows of 12 characters; then separate
    evaluation and prediction runs on the trained model, and a refused --use_crf mismatch."""
    output_dir = tmp_path / "zh"
    common = tiny_model + [f"--data_dir={SAMPLE_DIR}/zh", f"--output_dir={output_dir}",
                           "--max_seq_length=14", "--use_crf"]
    _ok(_run(common + ["--do_train", "--do_predict", "--train_batch_size=16",
                       "--num_train_epochs=2", "--learning_rate=2e-3", "--doc_stride=4"]))
    predicted = _check_prediction_files(str(output_dir), f"{SAMPLE_DIR}/zh/test.txt")
    assert all(ner.is_valid_sequence(s.labels, "bio") for s in predicted)
    assert max(len(s.tokens) for s in predicted) > 12  # some sentences needed several windows
    _ok(_run(common + ["--do_eval"]))
    results = _read_results(output_dir / "eval_results.txt")
    latest = tf.train.latest_checkpoint(str(output_dir))
    assert results["global_step"] == int(latest.rsplit("-", 1)[1]) and 0 <= results["eval_f1"] <= 1
    os.remove(output_dir / "test_predictions.txt")
    _ok(_run(common + ["--do_predict"]))
    assert (output_dir / "test_predictions.txt").exists()
    mismatch = _run(tiny_model + [f"--data_dir={SAMPLE_DIR}/zh", f"--output_dir={output_dir}",
                                  "--max_seq_length=14", "--do_eval"])
    assert mismatch.returncode == 1
    assert "was trained with --use_crf=True; pass --use_crf=True" in mismatch.stderr


def test_jsonl_iob1_and_unlabelled_test_file(tiny_model, tmp_path):
    data = tmp_path / "data"
    train = [{"tokens": ["Ann", "Lee", "met", "Bob", "in", "Paris"],
              "labels": ["I-PER", "I-PER", "O", "I-PER", "O", "I-LOC"]},
             {"tokens": ["Ann", "Bob", "left"], "labels": ["I-PER", "B-PER", "O"]}] * 8
    _write(data / "train.jsonl", "".join(json.dumps(r) + "\n" for r in train))
    _write(data / "test.jsonl", json.dumps({"tokens": ["Bob", "met", "Ann"], "id": "q1",
                                            "text": "Bob  met Ann"}) + "\n")
    output_dir = tmp_path / "out"
    _ok(_run(tiny_model + [f"--data_dir={data}", f"--output_dir={output_dir}", "--do_train",
                           "--do_predict", "--max_seq_length=16", "--train_batch_size=8",
                           "--num_train_epochs=1"]))
    assert inference.read_labels_file(str(output_dir)) == ["O", "I-LOC", "B-LOC", "I-PER", "B-PER"]
    [record] = [json.loads(line) for line in open(output_dir / "test_predictions.jsonl")]
    assert record["id"] == "q1" and record["text"] == "Bob  met Ann" and "gold_entities" not in \
        record
    assert not (output_dir / "test_conlleval.txt").exists()
    assert ner.is_valid_sequence(ner.read_conll(str(output_dir / "test_predictions.txt"))[0]
                                 .labels, "iob1")


@pytest.mark.parametrize("name, files, extra, message", [
    ("no label column", {"train.txt": "John B-PER\nlives\n"}, [],
     r"train.txt, line 2: no label column"),
    ("label outside the list", {"train.txt": "John B-PER\nlives O\n"}, ["--labels=O,B-LOC,I-LOC"],
     r"train.txt, line 1: label 'B-PER' is not in the label list \(from --labels\)"),
    ("I- after nothing", {"train.txt": "John B-PER\nin O\nParis I-LOC\nthe O\n"}, [],
     r"train.txt, line 3: 'I-LOC' follows 'O'.*--label_scheme=iob1"),
    ("more tokens than labels", {"train.jsonl": '{"tokens": ["a", "b"], "labels": ["O"]}\n'},
     [], r"train.jsonl, line 1: 2 tokens but 1 labels"),
    ("dev label unseen in training", {"train.txt": "John B-PER\n", "dev.txt": "Rome B-LOC\n"},
     ["--do_eval"], r"dev.txt, line 1: label 'B-LOC' is not in the label list \(from the "
                    r"training file\)"),
])
def test_bad_input_is_one_line_naming_file_and_line(tiny_model, tmp_path, name, files, extra,
                                                    message):
    for file_name, text in files.items():
        _write(tmp_path / "data" / file_name, text)
    result = _run(tiny_model + [f"--data_dir={tmp_path / 'data'}",
                                f"--output_dir={tmp_path / 'out'}", "--do_train",
                                "--max_seq_length=32"] + extra)
    assert result.returncode == 1, name
    [line] = [x for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    assert re.search(message, line), line
    assert not (tmp_path / "out" / "train.tf_record").exists()


# ------------------------------------------------------------------------------------------------
# Learning test on real text
# ------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def _is_capitalised(token):
    return token[0].isupper() and token.isalpha()


def _name_labels(tokens):
    """NAME entities: runs of two or more capitalised words (a sentence's first word excluded)."""
    labels = ["O"] * len(tokens)
    i = 1
    while i < len(tokens):
        j = i
        while j < len(tokens) and _is_capitalised(tokens[j]):
            j += 1
        if j - i >= 2:
            labels[i:j] = ["B-NAME"] + ["I-NAME"] * (j - i - 1)
        i = max(j, i + 1)
    return labels


def _news_split(documents, path):
    lines = []
    for document in documents:
        for text in re.split(r'(?<=[.!?])\s+(?=["A-Z])', document):
            tokens = _WORD.findall(text)
            if 3 <= len(tokens) <= 60:
                lines += [f"{t} {label}\n" for t, label in zip(tokens, _name_labels(tokens))]
                lines.append("\n")
    return _write(path, "".join(lines))


def _dictionary_lookup(train, test):
    """Tags every longest match of a name seen in training (case-sensitive)."""
    known = {tuple(s.tokens[a:b]) for s in train for _, a, b in ner.extract_entities(s.labels)}
    longest = max(map(len, known))
    predicted = []
    for sentence in test:
        labels, i = ["O"] * len(sentence.tokens), 0
        while i < len(sentence.tokens):
            for n in range(min(longest, len(sentence.tokens) - i), 0, -1):
                if tuple(sentence.tokens[i:i + n]) in known:
                    labels[i:i + n] = ["B-NAME"] + ["I-NAME"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        predicted.append(labels)
    return predicted


@pytest.mark.slow
@pytest.mark.parametrize("use_crf", [False, True])
def test_minilm_tagger_beats_dictionary_lookup_on_news_names(use_crf, minilm_tf,
                                                             gensim_test_data, tmp_path):
    with open(os.path.join(gensim_test_data, "lee_background.cor"), encoding="latin-1") as f:
        documents = [line for line in f if line.strip()]
    data = tmp_path / "news"
    # Training and test documents apart: many test names never occur in training.
    train_file = _news_split(documents[:150], data / "train.txt")
    test_file = _news_split(documents[230:300], data / "test.txt")
    train = ner.read_conll(train_file)
    test = ner.read_conll(test_file)
    gold = [s.labels for s in test]
    baseline = ner.entity_metrics(ner.count_entities(gold, _dictionary_lookup(train, test)))

    output_dir = tmp_path / "out"
    _ok(_run([f"--vocab_file={minilm_tf}/vocab.txt",
              f"--bert_config_file={minilm_tf}/bert_config.json",
              f"--init_checkpoint={minilm_tf}/bert_model.ckpt", f"--data_dir={data}",
              f"--output_dir={output_dir}", "--do_train", "--do_predict", "--max_seq_length=48",
              "--train_batch_size=16", "--predict_batch_size=64", "--num_train_epochs=1",
              "--learning_rate=1.5e-4", "--tf_random_seed=1", f"--use_crf={use_crf}"],
             timeout=1800))
    predicted = [s.labels for s in ner.read_conll(str(output_dir / "test_predictions.txt"))]
    model = ner.entity_metrics(ner.count_entities(gold, predicted))
    print(f"use_crf={use_crf}: {len(train)} training sentences, {len(test)} test sentences with "
          f"{sum(ner.count_entities(gold, gold).gold.values())} names; entity F1 "
          f"{model['eval_f1']:.4f} (P {model['eval_precision']:.4f}, R {model['eval_recall']:.4f}) "
          f"vs dictionary lookup {baseline['eval_f1']:.4f} (P {baseline['eval_precision']:.4f}, "
          f"R {baseline['eval_recall']:.4f})")
    assert model["eval_f1"] > baseline["eval_f1"] + 0.1
