"""Tests for the serving frontend (serving/server.py, serving/http.py) with stand-in workers.

The frontend runs in a thread of the test process, the real `bert-serving-client` 1.10 and raw
ZeroMQ sockets talk to it on 127.0.0.1, and its workers are this very file run as a script
(`python tests/test_serving_frontend.py <settings>`): a stand-in that speaks the worker protocol
without TensorFlow and answers each sentence with [sum of ids, length, first id, last id], so every
answer can be checked exactly and the tests start in well under a second. Environment variables
make the stand-in slow, late, crashing on a token, or unable to load. The real model is in
tests/test_serve.py.

Every load loop here is bounded in count and time (client timeouts, join timeouts).
"""

import contextlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import zmq  # noqa: E402

from serving import config as serving_config  # noqa: E402
from serving import features, protocol  # noqa: E402

# The stand-in worker's knobs (read from its environment).
ENV_DELAY = "FAKE_WORKER_DELAY_S"  # seconds per batch
ENV_LOAD = "FAKE_WORKER_LOAD_S"  # seconds before READY
ENV_CRASH_ID = "FAKE_WORKER_CRASH_ID"  # exit at once when a batch holds this token id
ENV_FATAL = "FAKE_WORKER_FATAL"  # send FATAL with this message instead of loading


def fake_outputs(arrays, spec):
    """The stand-in's answer: per row [sum(ids), length, first id, last id] (or probabilities)."""
    rows = []
    for ids, n in zip(arrays["input_ids"], arrays["lengths"]):
        rows.append([float(ids[:n].sum()), float(n), float(ids[0]), float(ids[n - 1])])
    rows = np.array(rows, dtype=np.float32).reshape(-1, 4)
    if spec["kind"] == "classifier":
        logits = np.stack([rows[:, 1], rows[:, 0] % 7], axis=1) / 4.0
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return {"probabilities": probabilities.astype(np.float32), "logits": logits}
    return {"encodes": rows}


def fake_worker_main(settings):
    """The stand-in worker process (see the module docstring)."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, settings["identity"].encode("ascii"))
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(settings["address"])
    time.sleep(float(os.environ.get(ENV_LOAD, "0")))
    if os.environ.get(ENV_FATAL):
        sock.send_multipart([protocol.W_FATAL, os.environ[ENV_FATAL].encode()])
        sock.close()
        return 1
    sock.send_multipart([protocol.W_READY, json.dumps({"pid": os.getpid()}).encode()])
    crash_id = int(os.environ.get(ENV_CRASH_ID, "-1"))
    delay = float(os.environ.get(ENV_DELAY, "0"))
    while True:
        if not sock.poll(1000):
            if os.getppid() != settings["parent_pid"]:
                return 0
            continue
        frames = sock.recv_multipart()
        if frames[0] == protocol.W_STOP:
            sock.close()
            return 0
        if frames[0] == protocol.W_INPUTS:  # another task's export: JSON answers
            answers = [{"input": x, "chars": len(json.dumps(x))}
                       for x in json.loads(frames[2])]
            sock.send_multipart([protocol.W_ANSWERS, frames[1], b"0.001",
                                 json.dumps(answers).encode()])
            continue
        arrays = protocol.unpack_arrays(frames[2:])
        if crash_id >= 0 and (arrays["input_ids"] == crash_id).any():
            os._exit(3)
        time.sleep(delay)
        sock.send_multipart([protocol.W_RESULT, frames[1], b"%.6f" % (delay + 0.001)]
                            + protocol.pack_arrays(fake_outputs(arrays, settings["spec"])))


if __name__ == "__main__":
    sys.exit(fake_worker_main(json.loads(sys.argv[-1])))


import pytest  # noqa: E402
from bert_serving.client import BertClient, ConcurrentBertClient  # noqa: E402

from serving.server import Server  # noqa: E402
from tests import artifacts  # noqa: E402

WORKER_COMMAND = [sys.executable, os.path.abspath(__file__)]

# A hang fails the test (with every thread's stack) instead of the whole run.
pytestmark = pytest.mark.timeout(120)

SENTENCES = [
    "hello world", "the quick brown fox jumps over the lazy dog", "a", "serving bert at scale",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
    "what is the meaning of this ||| nothing at all", "Zürich is in Switzerland",
    "東京は日本の首都",
    "short", "a somewhat longer sentence that will be truncated at twenty five tokens because it "
    "goes on and on and on and on without end",
]


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vocab_file():
    try:
        return artifacts.english_vocab()
    except artifacts.ArtifactUnavailable as e:
        pytest.skip(str(e))


def make_spec(vocab_file, kind="encoder", labels=None):
    return serving_config.ModelSpec(kind=kind, vocab_file=vocab_file, do_lower_case=True,
                                    hidden_size=4, max_length=25, num_hidden_layers=2,
                                    max_position_embeddings=64, labels=labels)


_FEATURIZERS = {}


def featurizer_for(vocab_file, max_length=25):
    key = (vocab_file, max_length)
    if key not in _FEATURIZERS:
        _FEATURIZERS[key] = features.Featurizer(vocab_file, True, max_length)
    return _FEATURIZERS[key]


def expected(vocab_file, texts, max_length=25):
    """What the stand-in must answer for `texts`, computed from the frontend's own tokenizer."""
    rows = featurizer_for(vocab_file, max_length).featurize(texts, False)
    return fake_outputs(features.pad_batch(rows, max(len(f) for f in rows)),
                        {"kind": "encoder"})["encodes"]


class Running:
    """A frontend running in a thread, with its ports; `stop()` shuts it down gracefully."""

    def __init__(self, server, config):
        self.server = server
        self.config = config
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.result = self.server.run()

    def client(self, **kwargs):
        kwargs.setdefault("timeout", 20000)
        return BertClient(port=self.config.port, port_out=self.config.port_out, **kwargs)

    def wait_ready(self, timeout=20.0):
        with self.client(ignore_all_checks=True) as bc:
            deadline = time.time() + timeout
            while time.time() < deadline:
                status = bc.server_status
                if all(w["ready"] for w in status["workers"]):
                    return status
                time.sleep(0.1)
        raise AssertionError("the workers did not get ready within %gs" % timeout)

    def stop(self, timeout=30.0):
        self.server.request_shutdown("test")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server did not stop within %gs" % timeout
        return self.result


@contextlib.contextmanager
def running(vocab_file, monkeypatch=None, env=None, spec=None, wait=True, **overrides):
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, str(value))
    values = dict(port=free_port(), port_out=free_port(), num_worker=2, max_batch_size=16,
                  shutdown_timeout=20.0)
    values.update(overrides)
    config = serving_config.ServeConfig(**values)
    config.validate()
    server = Server(config, spec or make_spec(vocab_file), [-1] * config.num_worker,
                    worker_command=WORKER_COMMAND)
    run = Running(server, config)
    try:
        if wait:
            run.wait_ready()
        yield run
    finally:
        if run.thread.is_alive():
            run.stop()


class RawClient:
    """Raw PUSH/SUB sockets speaking the client protocol, to send what BertClient never would."""

    def __init__(self, config, identity=b"raw-client", subscribe=True):
        self.context = zmq.Context()
        self.identity = identity
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect("tcp://127.0.0.1:%d" % config.port)
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVTIMEO, 10000)
        self.config = config
        if subscribe:
            self.subscribe()

    def subscribe(self):
        self.sub.setsockopt(zmq.SUBSCRIBE, self.identity)
        self.sub.connect("tcp://127.0.0.1:%d" % self.config.port_out)

    def send(self, *frames):
        self.push.send_multipart(list(frames))

    def recv(self):
        return self.sub.recv_multipart()

    def close(self):
        self.push.close()
        self.sub.close()
        self.context.term()


def _error_of(frames):
    header = json.loads(frames[1])
    assert frames[0] == b"raw-client"
    return header.get("status"), header.get("error", "")


# ------------------------------------------------------------------------------------------------
# The protocol with the real client
# ------------------------------------------------------------------------------------------------


def test_client_calls_and_answers(vocab_file, monkeypatch):
    with running(vocab_file, monkeypatch, show_tokens_to_client=True) as run:
        with run.client(show_server_config=False) as bc:
            config = bc.server_config
            assert config["server_version"] == "1.10.0" and config["max_seq_len"] == 25
            assert bc.length_limit == 25 and bc.token_info_available
            np.testing.assert_array_equal(bc.encode(SENTENCES), expected(vocab_file, SENTENCES))
            vectors, tokens = bc.encode(["hello world", "a ||| b"], show_tokens=True)
            assert tokens == [["[CLS]", "hello", "world", "[SEP]"],
                              ["[CLS]", "a", "[SEP]", "b", "[SEP]"]]
            # Pre-tokenized input: tokens are WordPieces as given, unknown ones become [UNK].
            tokenized = bc.encode([["hello", "world"], ["xqzv", "|||", "a"]], is_tokenized=True)
            rows = featurizer_for(vocab_file).featurize(
                [["hello", "world"], ["xqzv", "|||", "a"]], True)
            assert rows[1].tokens == ["[CLS]", "[UNK]", "[SEP]", "a", "[SEP]"]
            assert rows[1].input_type_ids == [0, 0, 0, 1, 1]
            np.testing.assert_array_equal(tokenized[0], expected(vocab_file, ["hello world"])[0])
            assert tokenized[1][0] == sum(rows[1].input_ids)
            # Non-blocking requests, fetched all at once and in sending order.
            for i in range(5):
                bc.encode(SENTENCES[i:i + 3], blocking=False)
            fetched = bc.fetch_all(sort=True, concat=True)
            np.testing.assert_array_equal(
                fetched, np.concatenate([expected(vocab_file, SENTENCES[i:i + 3])
                                         for i in range(5)]))
            batches = (SENTENCES[i:i + 2] for i in range(0, 6, 2))
            got = sorted(bc.encode_async(batches, max_num_batch=3), key=lambda r: r.id)
            assert len(got) == 3
            np.testing.assert_array_equal(got[2].embedding, expected(vocab_file, SENTENCES[4:6]))
            stats = bc.server_status["statistic"]
            assert stats["num_answered_request"] == 11 and stats["num_error_reply"] == 0
        with run.client(output_fmt="list") as bc:
            assert bc.encode(["hello world"]) == expected(vocab_file, ["hello world"]).tolist()
        concurrent = ConcurrentBertClient(max_concurrency=3, port=run.config.port,
                                          port_out=run.config.port_out, timeout=20000)
        try:
            assert concurrent.server_config["server_version"] == "1.10.0"
            np.testing.assert_array_equal(concurrent.encode(SENTENCES[:2]),
                                          expected(vocab_file, SENTENCES[:2]))
        finally:
            concurrent.close()


def test_timeout_reaches_the_client_when_nothing_answers(vocab_file, monkeypatch):
    # The worker is still loading (3 s): a client with timeout=300 ms gets TimeoutError.
    with running(vocab_file, monkeypatch, env={ENV_LOAD: 3}, wait=False, num_worker=1) as run:
        with run.client(timeout=300, ignore_all_checks=True) as bc:
            with pytest.raises(TimeoutError):
                bc.encode(["hello"])


def test_every_request_gets_exactly_one_correct_answer_under_load(vocab_file, monkeypatch):
    num_clients, per_client = 16, 25
    rng = random.Random(1234)
    plans = [[rng.sample(SENTENCES, rng.randint(1, len(SENTENCES))) for _ in range(per_client)]
             for _ in range(num_clients)]
    outcomes = [None] * num_clients
    with running(vocab_file, monkeypatch, env={ENV_DELAY: 0.002}, max_batch_size=8) as run:

        def client_loop(k):
            with run.client() as bc:
                wrong = [i for i, texts in enumerate(plans[k])
                         if not np.array_equal(bc.encode(texts), expected(vocab_file, texts))]
                assert bc.server_status  # one more round trip: a duplicate reply is in by now
                outcomes[k] = (wrong, dict(bc.pending_response), set(bc.pending_request))

        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(num_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        with run.client() as bc:
            stats = bc.server_status["statistic"]
    assert all(o == ([], {}, set()) for o in outcomes), outcomes
    total = num_clients * per_client
    assert stats["num_data_request"] == stats["num_answered_request"] == total
    assert stats["num_total_seq"] == stats["num_answered_seq"] == sum(map(len, sum(plans, [])))
    assert stats["num_error_reply"] == stats["num_open_request"] == 0


# ------------------------------------------------------------------------------------------------
# Bad input, busy, dead workers, shutdown
# ------------------------------------------------------------------------------------------------

BAD_MESSAGES = [
    ([b"raw-client", b"not json", b"1", b"1"], 400, "not valid JSON"),
    ([b"raw-client", b"[\"caf\xe9\"]", b"2", b"1"], 400, "not valid UTF-8"),
    ([b"raw-client", b'{"texts": ["a"]}', b"3", b"1"], 400, "must be a JSON list"),
    ([b"raw-client", b"[]", b"4", b"0"], 400, "empty list"),
    ([b"raw-client", b'["ok", " "]', b"5", b"2"], 400, "texts[1] is empty"),
    ([b"raw-client", b'["ok", ["a"]]', b"6", b"2"], 400, "texts[1] is list"),
    ([b"raw-client", b"[1, 2]", b"7", b"2"], 400, "texts[0] is int"),
    ([b"raw-client", b"[[]]", b"8", b"1"], 400, "empty token list"),
    ([b"raw-client", b'["' + b"x" * 3000 + b'"]', b"9", b"1"], 413, "-max_request_bytes"),
    ([b"raw-client", b'["a"]', b"10"], 400, "expected 4 frames"),
]


def test_bad_requests_get_an_error_and_the_server_keeps_serving(vocab_file, monkeypatch):
    with running(vocab_file, monkeypatch, max_request_bytes=2000) as run:
        raw = RawClient(run.config)
        try:
            time.sleep(0.3)  # let the subscription arrive
            raw.send(b"junk")  # unaddressable: logged and dropped, nobody to answer
            for frames, status, text in BAD_MESSAGES:
                raw.send(*frames)
                reply = raw.recv()
                assert reply[-1] == (frames[2] if len(frames) == 4 else frames[-1])
                code, message = _error_of(reply)
                assert code == status and text in message, (text, reply)
            raw.send(b"raw-client", b'["hello world"]', b"11", b"1")
            reply = raw.recv()
            header = json.loads(reply[1])
            vector = np.frombuffer(reply[2], dtype=header["dtype"]).reshape(header["shape"])
            np.testing.assert_array_equal(vector, expected(vocab_file, ["hello world"]))
        finally:
            raw.close()
        with run.client() as bc:
            # What the unmodified client raises for a server-side error: a TypeError with it.
            with pytest.raises(TypeError, match="error 413: request of 350000 bytes"):
                bc.encode(["a"] * 70000)
            stats = bc.server_status["statistic"]
            np.testing.assert_array_equal(bc.encode(["a b"]), expected(vocab_file, ["a b"]))
    assert stats["num_error_reply"] == len(BAD_MESSAGES) + 1
    assert stats["num_malformed_message"] == 2


def test_a_reply_waits_for_a_client_that_subscribes_late(vocab_file, monkeypatch):
    with running(vocab_file, monkeypatch) as run:
        raw = RawClient(run.config, subscribe=False)
        try:
            raw.send(b"raw-client", b'["hello world"]', b"1", b"1")
            time.sleep(1.0)  # the answer is ready long before the client listens
            raw.subscribe()
            reply = raw.recv()
            assert reply[0] == b"raw-client" and reply[-1] == b"1"
        finally:
            raw.close()


def test_a_full_queue_answers_server_busy(vocab_file, monkeypatch):
    # While the only worker loads (2 s), nothing leaves the queue of at most 10 sentences.
    with running(vocab_file, monkeypatch, env={ENV_LOAD: 2}, wait=False, num_worker=1,
                 max_queue_size=10) as run:
        with run.client() as first, run.client() as second:
            for i in range(3):
                first.encode(SENTENCES[3 * i:3 * i + 3], blocking=False)  # 9 sentences wait
            time.sleep(0.3)
            with pytest.raises(TypeError, match="error 503: server busy"):
                second.encode(["one", "two"])
            with pytest.raises(TypeError, match="error 413"):
                second.encode(["x"] * 11)
            np.testing.assert_array_equal(second.encode(["fits"]), expected(vocab_file, ["fits"]))
            got = first.fetch_all(sort=True, concat=True)
            np.testing.assert_array_equal(got, expected(vocab_file, SENTENCES[:9]))
            stats = second.server_status["statistic"]
    assert stats["num_busy_reply"] == 1 and stats["num_answered_request"] == 4


def _worker_pid(bc, index):
    return next(w["pid"] for w in bc.server_status["workers"] if w["worker"] == index)


def test_a_killed_worker_is_restarted_and_its_batches_run_again(vocab_file, monkeypatch):
    texts = [SENTENCES[i % len(SENTENCES)] + " %d" % i for i in range(40)]
    with running(vocab_file, monkeypatch, env={ENV_DELAY: 0.5}, max_batch_size=4) as run:
        with run.client() as bc, run.client() as watcher:
            bc.encode(texts, blocking=False)
            deadline = time.time() + 10
            while time.time() < deadline:
                worker = watcher.server_status["workers"][0]
                if worker["in_flight_batches"]:
                    break
                time.sleep(0.02)
            os.kill(worker["pid"], signal.SIGKILL)
            np.testing.assert_array_equal(bc.fetch_all(concat=True), expected(vocab_file, texts))
            status = watcher.server_status
    assert status["statistic"]["num_worker_restart"] == 1
    assert status["statistic"]["num_retried_batch"] >= 1
    assert status["workers"][0]["pid"] != worker["pid"] and status["workers"][0]["restarts"] == 1


def test_a_sentence_that_kills_workers_fails_only_its_own_request(vocab_file, monkeypatch):
    poison = featurizer_for(vocab_file).tokenizer.vocab["poison"]
    with running(vocab_file, monkeypatch, env={ENV_CRASH_ID: poison}, batch_retries=1,
                 max_batch_size=16) as run:
        with run.client() as victim, run.client() as other:
            victim.encode(["a poison sentence"], blocking=False)
            other.encode(SENTENCES, blocking=False)  # probably in the same first batch
            with pytest.raises(TypeError, match="error 500: a worker process died 2 times"):
                victim.fetch_all()
            np.testing.assert_array_equal(other.fetch_all(concat=True),
                                          expected(vocab_file, SENTENCES))
            deadline = time.time() + 10
            while not all(w["ready"] for w in other.server_status["workers"]):
                assert time.time() < deadline
                time.sleep(0.1)
            np.testing.assert_array_equal(other.encode(["still serving"]),
                                          expected(vocab_file, ["still serving"]))
            stats = other.server_status["statistic"]
    assert stats["num_worker_restart"] == 2 and stats["num_failed_request"] == 1


def test_shutdown_finishes_accepted_requests_and_refuses_new_ones(vocab_file, monkeypatch):
    num_clients, limit = 8, 1000
    results = [[] for _ in range(num_clients)]
    with running(vocab_file, monkeypatch, env={ENV_DELAY: 0.02}, max_batch_size=4) as run:

        def client_loop(k):
            with run.client(timeout=5000) as bc:
                for i in range(limit):
                    texts = SENTENCES[i % 5:i % 5 + 1 + k % 4]
                    try:
                        ok = np.array_equal(bc.encode(texts), expected(vocab_file, texts))
                        results[k].append("ok" if ok else "WRONG")
                    except TypeError as e:
                        assert "shutting down" in str(e), e
                        results[k].append("refused")
                        return
                    except TimeoutError:
                        results[k].append("timeout")
                        return

        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(num_clients)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert run.stop() == (0, None)
        for t in threads:
            t.join(30)
        counters = run.server.statistics()
    outcomes = sum(results, [])
    assert "WRONG" not in outcomes
    # Every request the server read was answered (vectors or a refusal); none was lost: the
    # only unanswered ones (timeouts) are those sent after it had closed its socket.
    assert counters["num_data_request"] == outcomes.count("ok") + outcomes.count("refused")
    assert counters["num_answered_request"] == outcomes.count("ok")
    assert outcomes.count("ok") > num_clients and outcomes.count("refused") > 0


def test_a_model_that_cannot_load_stops_the_server_with_its_message(vocab_file, monkeypatch):
    with running(vocab_file, monkeypatch, env={ENV_FATAL: "checkpoint is corrupt"},
                 wait=False, num_worker=1) as run:
        run.thread.join(30)
        assert run.result == (1, "worker could not load the model: checkpoint is corrupt")
    with running(vocab_file, monkeypatch, env={ENV_FATAL: "", ENV_LOAD: 5}, wait=False,
                 num_worker=1, load_timeout=0.5) as run:
        run.thread.join(30)
        assert run.result == (1, "worker could not load the model: the model did not load "
                                 "within -load_timeout=0.5s")


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


def http_call(port, path, body=None, content_type="application/json"):
    """(status, JSON body) of a request to the server's HTTP API."""
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                     method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_encode_status_and_errors(vocab_file, monkeypatch):
    port = free_port()
    with running(vocab_file, monkeypatch, http_port=port, max_request_bytes=4000) as run:
        status, body = http_call(port, "/encode", {"id": 7, "texts": SENTENCES[:3]})
        assert status == 200 and body["id"] == 7 and body["status"] == 200
        np.testing.assert_array_equal(body["result"], expected(vocab_file, SENTENCES[:3]))
        status, body = http_call(port, "/encode", {"id": "t", "texts": [["hello", "world"]],
                                                   "is_tokenized": True})
        assert status == 200 and body["result"] == expected(vocab_file, ["hello world"]).tolist()
        status, body = http_call(port, "/status/server")
        assert status == 200 and body["statistic"]["num_answered_request"] == 2
        for payload, content_type, code, text in [
                ({"id": 1, "texts": []}, "application/json", 400, "empty list"),
                ({"id": 2, "texts": ["a"], "is_tokenized": True}, "application/json", 400,
                 "is_tokenized"),
                ({"id": 3, "texts": ["a"], "show_tokens": True}, "application/json", 400,
                 "-show_tokens_to_client"),
                ({"id": 4, "texts": ["a"]}, "text/plain", 415, "application/json"),
                (b"{not json", "application/json", 400, "not valid JSON"),
                (b'{"texts": ["caf\xe9"]}', "application/json", 400, "not valid UTF-8"),
                ({"id": 5}, "application/json", 400, '"texts"'),
                ({"id": 6, "texts": ["x" * 5000]}, "application/json", 413, "max_request_bytes")]:
            status, body = http_call(port, "/encode", payload, content_type)
            assert status == code and text in body["error"], (payload, status, body)
        status, body = http_call(port, "/predict", {"id": 8, "texts": ["a"]})
        assert status == 400 and "not a classifier" in body["error"]
        with run.client() as bc:  # ZeroMQ clients were not disturbed
            np.testing.assert_array_equal(bc.encode(["ok"]), expected(vocab_file, ["ok"]))


def test_http_predict_with_a_classifier(vocab_file, monkeypatch):
    port = free_port()
    labels = ["negative", "positive"]
    with running(vocab_file, monkeypatch, http_port=port, show_tokens_to_client=True,
                 spec=make_spec(vocab_file, "classifier", labels)) as run:
        texts = ["a fine film", "bad"]
        status, body = http_call(port, "/predict", {"id": 1, "texts": texts,
                                                    "show_tokens": True})
        assert status == 200 and body["tokens"][1] == ["[CLS]", "bad", "[SEP]"]
        rows = featurizer_for(vocab_file).featurize(texts, False)
        want = fake_outputs(features.pad_batch(rows, 5), {"kind": "classifier"})["probabilities"]
        for result, p in zip(body["result"], want):
            assert result["label"] == labels[int(np.argmax(p))]
            assert [result["probabilities"][label] for label in labels] == pytest.approx(p)
        with run.client() as bc:  # encode() on a classifier gives the probabilities
            np.testing.assert_allclose(bc.encode(texts), want, rtol=1e-6)


def test_other_tasks_exports_answer_on_predict_only(vocab_file, monkeypatch):
    port = free_port()
    spec = serving_config.ModelSpec(kind="saved_model", vocab_file=vocab_file,
                                    do_lower_case=True, hidden_size=4, max_length=25,
                                    saved_model_dir="/unused", export_task="squad")
    inputs = [["who?", "Ann did."], "Ann Lee flew to Paris.", ["where?", "in Paris " * 50]]
    with running(vocab_file, monkeypatch, http_port=port, spec=spec, max_batch_size=2) as run:
        status, body = http_call(port, "/predict", {"id": 3, "texts": inputs})
        assert status == 200 and body["id"] == 3
        assert body["result"] == [{"input": x, "chars": len(json.dumps(x))} for x in inputs]
        for texts, text in [([["q", ""]], "texts[0]"), ([3], "texts[0] is 3"), ([], "non-empty")]:
            status, body = http_call(port, "/predict", {"texts": texts})
            assert status == 400 and text in body["error"], body
        status, body = http_call(port, "/encode", {"texts": ["a"]})
        assert status == 400 and "'squad' export" in body["error"]
        with run.client() as bc:
            with pytest.raises(TypeError, match="error 400: this server runs a 'squad' export"):
                bc.encode(["a"])
