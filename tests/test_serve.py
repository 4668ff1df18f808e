"""Tests for serve.py with a real (tiny) BERT: the published bert-serving-client 1.10, unchanged.

The model is a random 2-layer BERT (hidden 32) over the released uncased English vocab, saved to a
checkpoint in a temporary directory; a classifier checkpoint adds a random two-label head to it.
serve.py runs as a subprocess started the way the README says, on 127.0.0.1 ports picked here.
The yardsticks are extract_features.py (run as a script) and the encoder API it is built on
(`tasks.features.BertEncoder`), `inference.Predictor` for the classifier, and the client's own
view of every request. The frontend's logic with stand-in workers is in test_serving_frontend.py.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings

import numpy as np
import pytest
import tensorflow as tf
from bert_serving.client import BertClient, ConcurrentBertClient

import inference
import modeling
from serving import features
from serving import workers as serving_workers
from tasks import classifier as classifier_lib
from tasks import features as features_lib
from tests import artifacts

tf1 = tf.compat.v1

REPO_ROOT = artifacts.REPO_ROOT
pytestmark = pytest.mark.timeout(600)

TINY_CONFIG = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.1,
                   attention_probs_dropout_prob=0.1, max_position_embeddings=64,
                   type_vocab_size=2, initializer_range=0.3)
LABELS = ["negative", "positive"]

SENTENCES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "what is the meaning of this ||| nothing at all, really",
    "Zürich and Genève are in Switzerland",
    "a",
    " ".join(["serving sentence vectors from a server"] * 6),  # truncated at 25 tokens
    "unbelievably unaffable tokenization",
    "東京は日本の首都です",
]


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """model/: vocab.txt, bert_config.json, bert_model.ckpt; tuned/: a classifier checkpoint."""
    try:
        vocab = artifacts.english_vocab()
    except artifacts.ArtifactUnavailable as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("serve")
    model_dir, tuned_dir = root / "model", root / "tuned"
    model_dir.mkdir()
    tuned_dir.mkdir()
    (model_dir / "vocab.txt").write_bytes(open(vocab, "rb").read())
    (model_dir / "bert_config.json").write_text(json.dumps(TINY_CONFIG))
    with tf.Graph().as_default():
        tf1.set_random_seed(3)
        input_ids = tf1.placeholder(tf.int32, [None, None])
        modeling.BertModel(modeling.BertConfig.from_dict(TINY_CONFIG), False, input_ids)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, str(model_dir / "bert_model.ckpt"))
            # run_classifier.py's head: root-scope output_weights [labels, hidden], output_bias.
            tf1.get_variable("output_weights", [len(LABELS), 32],
                             initializer=tf1.truncated_normal_initializer(stddev=0.5))
            tf1.get_variable("output_bias", [len(LABELS)], initializer=tf1.ones_initializer())
            sess.run(tf1.variables_initializer(tf1.global_variables()[-2:]))
            tf1.train.Saver().save(sess, str(tuned_dir / "model.ckpt"), global_step=12)
    (tuned_dir / "labels.txt").write_text("".join(label + "\n" for label in LABELS))
    return {"model_dir": str(model_dir), "tuned_dir": str(tuned_dir), "root": root,
            "checkpoint": str(model_dir / "bert_model.ckpt"), "vocab": str(model_dir / "vocab.txt"),
            "config": str(model_dir / "bert_config.json")}


class ServeProcess:
    """serve.py as a subprocess, its log in a file, its ports on 127.0.0.1."""

    def __init__(self, log_path, *flags, http=False):
        self.port, self.port_out = free_port(), free_port()
        self.http_port = free_port() if http else None
        args = ["-port=%d" % self.port, "-port_out=%d" % self.port_out] + list(flags)
        if http:
            args.append("-http_port=%d" % self.http_port)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("BERT_DEBUG", None)
        self.process = subprocess.Popen([sys.executable, "serve.py"] + args, cwd=REPO_ROOT,
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def client(self, **kwargs):
        kwargs.setdefault("timeout", 60000)
        return BertClient(port=self.port, port_out=self.port_out, **kwargs)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_ready(self, timeout=300):
        deadline = time.time() + timeout
        with self.client(ignore_all_checks=True, timeout=2000) as bc:
            while time.time() < deadline:
                assert self.process.poll() is None, self.log()[-3000:]
                try:
                    status = bc.server_status
                except TimeoutError:
                    continue
                if all(w["ready"] for w in status["workers"]):
                    return status
                time.sleep(0.2)
        raise AssertionError("serve.py not ready after %ds:\n%s" % (timeout, self.log()[-3000:]))

    def stop(self, timeout=60):
        """SIGTERM, then its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """The README's command on the tiny model: defaults, 2 workers, tokens shown, HTTP on."""
    log = tmp_path_factory.mktemp("logs") / "serve.log"
    proc = ServeProcess(str(log), "-model_dir=%s" % tiny_model["model_dir"], "-num_worker=2",
                        "-max_seq_len=25", "-show_tokens_to_client", http=True)
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0, proc.log()[-3000:]


@pytest.fixture(scope="module")
def extracted(tiny_model, tmp_path_factory):
    """extract_features.py's vectors for SENTENCES with the server's settings (mean, layer -2)."""
    out = tmp_path_factory.mktemp("extracted")
    (out / "in.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "extract_features.py", "--input_file=%s" % (out / "in.txt"),
         "--output_file=%s" % (out / "vectors.npy"), "--vocab_file=%s" % tiny_model["vocab"],
         "--bert_config_file=%s" % tiny_model["config"],
         "--init_checkpoint=%s" % tiny_model["checkpoint"], "--max_seq_length=25",
         "--pooling_strategy=mean", "--pooling_layer=-2", "--output_format=npy"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out / "vectors.npy")


@pytest.fixture(scope="module")
def encoder(tiny_model):
    """extract_features.py's encoder API on the same checkpoint (layers -1 and -2)."""
    enc = features_lib.BertEncoder(tiny_model["config"], tiny_model["vocab"],
                                   tiny_model["checkpoint"], max_seq_length=25,
                                   layer_indexes=(-2, -1), batch_size=64)
    yield enc
    enc.close()


# ------------------------------------------------------------------------------------------------
# The unmodified client against the server
# ------------------------------------------------------------------------------------------------


def test_client_calls_give_extract_features_vectors(server, extracted):
    with server.client(show_server_config=True) as bc:
        config = bc.server_config
        assert config["server_version"] == "1.10.0" and config["max_seq_len"] == 25
        assert config["pooling_strategy"] == "REDUCE_MEAN" and config["pooling_layer"] == [-2]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "longer than max_seq_len" warning for these
            vectors = bc.encode(SENTENCES[:5])
        assert vectors.dtype == np.float32 and vectors.shape == (5, 32)
        np.testing.assert_allclose(vectors, extracted[:5], atol=1e-5)
        with pytest.warns(UserWarning, match="max_seq_len=25"):
            np.testing.assert_allclose(bc.encode(SENTENCES), extracted, atol=1e-5)
        vectors, tokens = bc.encode(["Hello world", "a ||| b"], show_tokens=True)
        assert tokens == [["[CLS]", "hello", "world", "[SEP]"],
                          ["[CLS]", "a", "[SEP]", "b", "[SEP]"]]
        np.testing.assert_allclose(vectors[0], extracted[0], atol=1e-5)
        tokenized = bc.encode([["hello", "world"], ["the", "quick", "brown", "fox", "jumps", "over",
                                                    "the", "lazy", "dog", "."]], is_tokenized=True)
        np.testing.assert_allclose(tokenized, extracted[:2], atol=1e-5)
        for start in range(0, 8, 2):
            bc.encode(SENTENCES[start:start + 2], blocking=False)
        np.testing.assert_allclose(bc.fetch_all(sort=True, concat=True), extracted, atol=1e-5)
        got = sorted(bc.encode_async((SENTENCES[i:i + 4] for i in (0, 4)), max_num_batch=2),
                     key=lambda r: r.id)
        np.testing.assert_allclose(np.concatenate([r.embedding for r in got]), extracted,
                                   atol=1e-5)
        stats = bc.server_status["statistic"]
        assert stats["num_error_reply"] == 0 and stats["num_answered_request"] >= 9
    concurrent = ConcurrentBertClient(max_concurrency=4, port=server.port,
                                      port_out=server.port_out, output_fmt="list")
    try:
        lists = concurrent.encode(SENTENCES[:3])
        np.testing.assert_allclose(np.array(lists), extracted[:3], atol=1e-5)
        assert concurrent.server_status["statistic"]["num_total_client"] >= 5
    finally:
        concurrent.close()


def test_client_timeout(server):
    # 1 ms: no server answers 2,000 sentences that fast.
    with server.client(timeout=1, ignore_all_checks=True) as bc:
        with pytest.raises(TimeoutError):
            bc.encode(SENTENCES * 250)


def test_http_gives_the_same_vectors(server, extracted):
    def post(path, body):
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (server.http_port, path),
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())

    status, body = post("/encode", {"id": "req-1", "texts": SENTENCES, "is_tokenized": False})
    assert status == 200 and body["id"] == "req-1" and body["status"] == 200
    np.testing.assert_allclose(body["result"], extracted, atol=1e-5)
    with urllib.request.urlopen("http://127.0.0.1:%d/status/server" % server.http_port,
                                timeout=60) as response:
        status = json.loads(response.read())
    assert status["server_version"] == "1.10.0" and status["statistic"]["num_answered_seq"] > 0


def test_a_killed_worker_is_replaced_and_no_sentence_is_lost(server, extracted):
    texts = SENTENCES * 500
    with server.client(check_length=False) as bc, server.client() as watcher:
        bc.encode(texts, blocking=False)
        deadline = time.time() + 30
        while time.time() < deadline:
            worker = watcher.server_status["workers"][1]
            if worker["in_flight_batches"]:
                break
        os.kill(worker["pid"], signal.SIGKILL)
        np.testing.assert_allclose(bc.fetch_all(concat=True), np.tile(extracted, [500, 1]),
                                   atol=1e-5)
        deadline = time.time() + 120
        while not watcher.server_status["workers"][1]["ready"]:
            assert time.time() < deadline
            time.sleep(0.2)
        status = watcher.server_status
        np.testing.assert_allclose(bc.encode(SENTENCES), extracted, atol=1e-5)
    assert status["workers"][1]["restarts"] == 1 and status["workers"][1]["pid"] != worker["pid"]
    assert status["statistic"]["num_worker_restart"] == 1
    assert "worker 1 (pid %d) exited with status -9" % worker["pid"] in server.log()


# ------------------------------------------------------------------------------------------------
# Pooling strategies against the encoder API of extract_features.py
# ------------------------------------------------------------------------------------------------


def _run_strategy(tiny_model, strategy, layers, texts, mask_cls_sep=False):
    spec = {"bert_config_file": tiny_model["config"], "vocab_file": tiny_model["vocab"],
            "checkpoint": tiny_model["checkpoint"], "do_lower_case": True, "max_length": 25,
            "num_hidden_layers": 2}
    runner = serving_workers.EncoderRunner(spec, strategy, layers, 64, 0, False, False)
    try:
        rows = features.Featurizer(tiny_model["vocab"], True, 25, mask_cls_sep).featurize(texts,
                                                                                         False)
        return runner.run(features.pad_batch(rows, max(len(r) for r in rows)))["encodes"], rows
    finally:
        runner.close()


def test_every_pooling_strategy_equals_the_encoder_api(tiny_model, encoder):
    texts = SENTENCES[:4]
    # The encoder API takes a pair as a tuple (the script splits `A ||| B` lines itself).
    pairs = [tuple(features.split_pair(t)) if features.split_pair(t)[1] else t for t in texts]
    for strategy, theirs in [("REDUCE_MEAN", "mean"), ("REDUCE_MAX", "max"),
                             ("CLS_TOKEN", "cls")]:
        ours, _ = _run_strategy(tiny_model, strategy, [-1, -2], texts)
        np.testing.assert_allclose(ours, encoder.encode(pairs, theirs, layers=[-1, -2]),
                                   atol=1e-5)
    # REDUCE_MEAN_MAX: bert-as-service's column order [mean(l1) mean(l2) max(l1) max(l2)].
    ours, _ = _run_strategy(tiny_model, "REDUCE_MEAN_MAX", [-1, -2], texts)
    theirs = encoder.encode(pairs, "mean_max", layers=[-1, -2]).reshape(4, 2, 2, 32)
    np.testing.assert_allclose(ours, theirs.transpose(0, 2, 1, 3).reshape(4, 128), atol=1e-5)
    token_states = encoder.encode_tokens(pairs, layers=[-1])  # [(tokens, [1, len, 32])]
    ours, rows = _run_strategy(tiny_model, "NONE", [-1], texts)
    last, _ = _run_strategy(tiny_model, "SEP_TOKEN", [-1], texts)
    for i, (tokens, states) in enumerate(token_states):
        assert tokens == rows[i].tokens
        np.testing.assert_allclose(ours[i, :len(tokens)], states[0], atol=1e-5)
        assert not ours[i, len(tokens):].any()
        np.testing.assert_allclose(last[i], states[0, -1], atol=1e-5)
    # CLS_POOLED: the encoder export's pooled_output, through the one inference path.
    pooled, rows = _run_strategy(tiny_model, "CLS_POOLED", [-2], texts)
    arrays = features.pad_batch(rows, max(len(r) for r in rows))
    with inference.InferenceModel(modeling.BertConfig.from_dict(TINY_CONFIG),
                                  tiny_model["checkpoint"], inference.ENCODER_HEAD.build) as model:
        want = model.run({"input_ids": arrays["input_ids"], "input_mask": arrays["input_mask"],
                          "segment_ids": arrays["input_type_ids"]})["pooled_output"]
    np.testing.assert_allclose(pooled, want, atol=1e-5)


def test_mask_cls_sep_leaves_them_out_of_the_pool(tiny_model, encoder):
    texts = ["hello world", "the cat ||| a dog"]
    ours, rows = _run_strategy(tiny_model, "REDUCE_MEAN", [-1], texts, mask_cls_sep=True)
    assert rows[1].input_mask == [0, 1, 1, 0, 1, 1, 0]
    # bert-as-service feeds that mask to the model as well; the oracle does the same by hand.
    for i, row in enumerate(rows):
        [(positions, states, mask)] = list(encoder.run_batches([row], [-1]))
        np.testing.assert_allclose(ours[i], states[0][0][np.array(row.input_mask) == 1].mean(0),
                                   atol=1e-5)


def test_pooling_none_with_dynamic_length_then_sigterm_under_traffic(tiny_model, encoder,
                                                                     tmp_path):
    proc = ServeProcess(str(tmp_path / "serve.log"), "-model_dir=%s" % tiny_model["model_dir"],
                        "-pooling_strategy=NONE", "-pooling_layer=-1", "-max_seq_len=NONE",
                        "-num_worker=1", "-max_batch_size=8")
    try:
        proc.wait_ready()
        with proc.client() as bc:
            assert bc.server_config["max_seq_len"] is None and bc.length_limit is None
            with pytest.warns(UserWarning, match="dynamically"):
                tokens_out = bc.encode(["hello world", "the cat sat on the mat"])
        assert tokens_out.shape == (2, 8, 32)  # padded to the longest sentence, not 25 or 64
        for i, (tokens, states) in enumerate(encoder.encode_tokens(
                ["hello world", "the cat sat on the mat"], layers=[-1])):
            np.testing.assert_allclose(tokens_out[i, :len(tokens)], states[0], atol=1e-5)
            assert not tokens_out[i, len(tokens):].any()
        outcomes = _traffic_then_sigterm(proc)
        status = proc.stop()
    finally:
        proc.stop()
    assert status == 0, proc.log()[-3000:]
    answered, errors = map(int, re.search(r"stopped \(SIGTERM\): (\d+) requests answered, "
                                          r"(\d+) error replies", proc.log()).groups())
    assert "WRONG" not in outcomes and outcomes.count("ok") > 0
    assert outcomes.count("refused") > 0  # the signal came while the clients were sending
    # Everything the server read was answered: vectors or an explicit refusal; only requests
    # sent after it had closed its socket (timeouts) were never read.
    assert answered == outcomes.count("ok") + 1 and errors == outcomes.count("refused")


def _traffic_then_sigterm(proc, num_clients=6, limit=3000):
    """Clients send until refused (at most `limit` requests each); SIGTERM arrives after 1 s."""
    texts = ["the cat sat on the mat", "hello world ||| a dog"]
    outcomes = []
    lock = threading.Lock()

    def client_loop():
        with proc.client(timeout=10000) as bc, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(limit):
                try:
                    vectors = bc.encode(texts)
                    outcome = "ok" if vectors.shape[0] == 2 else "WRONG"
                except TypeError as e:
                    outcome = "refused" if "shutting down" in str(e) else "WRONG"
                except TimeoutError:
                    outcome = "timeout"
                with lock:
                    outcomes.append(outcome)
                if outcome != "ok":
                    return

    threads = [threading.Thread(target=client_loop) for _ in range(num_clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    proc.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def test_sigterm_while_the_model_loads_exits_0_and_stops_the_workers(tiny_model, tmp_path):
    proc = ServeProcess(str(tmp_path / "serve.log"), "-model_dir=%s" % tiny_model["model_dir"],
                        "-num_worker=2")
    deadline = time.time() + 120
    while "loading the model" not in proc.log():
        assert time.time() < deadline and proc.process.poll() is None, proc.log()[-2000:]
        time.sleep(0.1)
    started = time.time()
    assert proc.stop(timeout=60) == 0, proc.log()[-3000:]
    assert time.time() - started < 30
    for pid in map(int, re.findall(r"started pid (\d+)", proc.log())):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "stopped (SIGTERM): 0 requests answered" in proc.log()


# ------------------------------------------------------------------------------------------------
# Classifiers: a run_classifier.py checkpoint and an export_model.py SavedModel
# ------------------------------------------------------------------------------------------------


def _post(port, path, body):
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_classifier_checkpoint_and_saved_model_match_the_predictor(tiny_model, tmp_path):
    checkpoint = os.path.join(tiny_model["tuned_dir"], "model.ckpt-12")
    spec = inference.ExportSpec(task=classifier_lib.CLASSIFIER_HEAD.name,
                                bert_config=modeling.BertConfig.from_dict(TINY_CONFIG),
                                checkpoint=checkpoint, vocab_file=tiny_model["vocab"],
                                do_lower_case=True, max_seq_length=25, labels=LABELS)
    saved_model = str(tmp_path / "saved_model")
    with spec.load_model() as model:
        inference.write_saved_model(model, spec, saved_model, str(tmp_path / "scratch"))
    predictor = inference.Predictor(saved_model)
    want = predictor.predict(SENTENCES)
    # Other tasks' exports go through the predictor class they name, answers made JSON-ready.
    answers = serving_workers.TaskRunner({"saved_model_dir": saved_model}, 4).run_inputs(
        SENTENCES[:3] + [["a pair", "as a list"]])
    assert [a["label"] for a in answers[:3]] == [w["label"] for w in want[:3]]
    np.testing.assert_allclose(answers[1]["probabilities"], want[1]["probabilities"], atol=1e-6)
    assert answers[3]["text"] == "a pair ||| as a list"
    servers = [
        ServeProcess(str(tmp_path / "ckpt.log"), "-model_dir=%s" % tiny_model["model_dir"],
                     "-tuned_model_dir=%s" % tiny_model["tuned_dir"], "-task=classifier",
                     "-num_worker=1", http=True),
        ServeProcess(str(tmp_path / "saved.log"), "-saved_model_dir=%s" % saved_model,
                     "-num_worker=1", http=True)]
    try:
        for proc in servers:
            proc.wait_ready()
            with proc.client(check_length=False) as bc:
                np.testing.assert_allclose(bc.encode(SENTENCES),
                                           [w["probabilities"] for w in want], atol=1e-5)
                assert bc.server_config["model"]["labels"] == LABELS
            body = _post(proc.http_port, "/predict", {"id": 5, "texts": SENTENCES})
            assert body["id"] == 5 and body["status"] == 200
            for got, expected in zip(body["result"], want):
                assert got["label"] == expected["label"]
                np.testing.assert_allclose([got["probabilities"][label] for label in LABELS],
                                           expected["probabilities"], atol=1e-5)
    finally:
        for proc in servers:
            assert proc.stop() == 0, proc.log()[-3000:]


# ------------------------------------------------------------------------------------------------
# Usage errors
# ------------------------------------------------------------------------------------------------


def test_bad_flags_give_one_error_line(tiny_model):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    model = "-model_dir=%s" % tiny_model["model_dir"]
    try:
        for args, message in [
                ([], "-model_dir is required"),
                ([model, "-max_seq_len=100"], "longer than the model's max_position_embeddings=64"),
                ([model, "-max_seq_len=many"], "-max_seq_len=many"),
                ([model, "-pooling_layer=-3"], "layer -3 does not exist in a 2-layer model"),
                ([model, "-port=%d" % busy.getsockname()[1], "-port_out=%d" % free_port()],
                 "cannot listen on tcp://127.0.0.1:%d" % busy.getsockname()[1])]:
            result = subprocess.run([sys.executable, "serve.py"] + args, cwd=REPO_ROOT,
                                    capture_output=True, text=True, timeout=120,
                                    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
            assert result.returncode == 1 and len(errors) == 1, (args, result.stderr[-2000:])
            assert message in errors[0], (args, errors)
    finally:
        busy.close()
