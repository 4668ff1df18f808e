"""The frontend: one process, one event loop, every client's requests, every worker's batches.

    clients --PUSH--> [PULL :port]                                   [XPUB :port_out] --> clients
    HTTP    --aiohttp thread--> [PULL inproc]   frontend loop        (replies by identity)
                                 tokenize -> BatchQueue -> cut -> [ROUTER ipc] <-> worker processes

The loop (`Server.run`) waits on all sockets (and wakes every 100 ms) and in each round:
1. reads client messages: SHOW_CONFIG/SHOW_STATUS are answered at once; texts are validated,
   tokenized and queued, or refused with an error reply to that client only (malformed, empty,
   not UTF-8, too large: 4xx; queue full: 503 "server busy"; shutting down: 503);
2. reads worker messages: READY, RESULT (rows go to their requests; a complete request is
   answered), FAILED (that batch's requests get a 500 error), FATAL (a model that cannot load);
3. checks the worker processes: one that exited has its in-flight batches put back at the front
   of the queue (a sentence whose worker died more than `batch_retries` times fails its request
   with an explicit error instead) and is restarted;
4. hands batches to ready workers: an idle worker gets its share of what waits, sized by its
   cost model (batching.CostModel, fitted from the model times it reports), a busy one a second
   batch only when a full batch waits (so small requests that arrive while the workers run are
   batched together); a batch is padded to its longest sentence;
5. sends replies held back because their client's subscription had not arrived yet (ZeroMQ's
   "slow joiner": the XPUB socket tells which clients are subscribed, so a reply is sent once its
   client can receive it, instead of being lost);
6. when shutting down (SIGTERM, SIGINT or a TERMINATION command): refuses new requests, finishes
   every accepted one (at most `shutdown_timeout` seconds, after which the rest fail explicitly),
   stops the workers and returns 0.

Every request is answered exactly once: a request object is closed by its first answer or error,
and results of batches no longer in flight (a worker that was given up on) are ignored.
"""

import collections
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import numpy as np
import zmq
from absl import logging

from serving import batching, features, protocol

# Batches handed to one worker before it answers: one running, one waiting, so the model never
# waits for the frontend.
_IN_FLIGHT_PER_WORKER = 2
_POLL_MS = 100
_MESSAGES_PER_ROUND = 256
# How long a reply waits for its client's subscription before it is sent anyway (and lost).
_SUBSCRIBE_WAIT_S = 5.0
_MAX_LOAD_FAILURES = 3
_WORKER_STOP_WAIT_S = 10.0
_ACTIVE_CLIENT_S = 180.0
_MAX_TRACKED_CLIENTS = 10000
_MAX_MESSAGE_BYTES = 1 << 30

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _row(values, row, length):
    """Row `row` of a batch output; token-level arrays keep only the sentence's own tokens."""
    if isinstance(values, list):
        return values[row]
    return np.array(values[row, :length] if values.ndim == 3 else values[row])


class Request:
    """One client request in progress. `done` flips once, on its answer or error."""

    def __init__(self, origin, kind, size, identity=None, request_id=None, http_id=None,
                 user_id=None, with_tokens=False):
        self.origin = origin  # "zmq" or "http"
        self.kind = kind  # "encode" or "predict"
        self.size = size
        self.identity = identity
        self.request_id = request_id
        self.http_id = http_id
        self.user_id = user_id
        self.with_tokens = with_tokens
        self.tokens = None
        self.max_length = 0
        self.outputs = [None] * size
        self.remaining = size
        self.done = False
        self.started = time.monotonic()


class WorkerSlot:
    """A worker position: the process now in it, its device, threads and in-flight batches."""

    def __init__(self, index, device, threads):
        self.index = index
        self.device = device  # GPU id, or -1 for the CPU
        self.threads = threads
        self.generation = 0
        self.process = None
        self.identity = None
        self.ready = False
        self.ever_ready = False
        self.inflight = {}  # batch id (bytes) -> list of batching.Item
        self.batch_tokens = {}  # batch id -> sentences x padded length
        self.cost = batching.CostModel()
        self.started_at = 0.0
        self.restart_at = None
        self.restarts = 0
        self.load_failures = 0
        self.disabled = False
        self.fatal_message = None
        self.info = {}

    def describe(self):
        return {"worker": self.index, "pid": self.process.pid if self.process else None,
                "device": "cpu" if self.device < 0 else "gpu %d" % self.device,
                "threads": self.threads, "ready": self.ready, "in_flight_batches":
                len(self.inflight), "restarts": self.restarts, "disabled": self.disabled,
                "batch_cost": self.cost.describe()}


class Server:
    """The frontend of a running server (see the module docstring).

    Args:
      config: `config.ServeConfig` (validated).
      model: `config.ModelSpec` of the model the workers load.
      devices: one device per worker (GPU id or -1).
      worker_command: argv prefix that starts a worker (the JSON settings are appended);
        default `python -m serving.workers`.
      progress: (optional) an object with `update(n)`, told the sentences of each answer.
    """

    def __init__(self, config, model, devices, worker_command=None, progress=None):
        self.config = config
        self.model = model
        self.progress = progress
        self._worker_command = list(worker_command or [sys.executable, "-m", "serving.workers"])
        threads = config.num_threads or max(1, (os.cpu_count() or 1) // config.num_worker)
        self._slots = [WorkerSlot(i, d, threads) for i, d in enumerate(devices)]
        self._featurizer = features.Featurizer(model.vocab_file, model.do_lower_case,
                                               model.max_length, config.mask_cls_sep)
        self._queue = batching.BatchQueue(config.max_batch_size, config.priority_batch_size)
        self._open = {}  # id(request) -> Request
        self._held = []  # (deadline, identity, frames) waiting for a subscription
        self._subscribed = set()
        self._gone = collections.OrderedDict()  # identities that unsubscribed (clients closed)
        self._batch_ids = 0
        self._stopping = False
        self._stop_reason = None
        self._stop_deadline = None
        self._by_identity = {}
        self._final = False
        self._fatal = None
        self._ever_ready = False
        self._clients = collections.OrderedDict()  # identity -> last active (monotonic)
        self._latencies = collections.deque(maxlen=2048)
        self._counters = collections.Counter()
        self._start_time = str(datetime.now())
        self._http = None
        self._context = None

    # -- life cycle ----------------------------------------------------------------------------

    def request_shutdown(self, reason="shutdown requested"):
        """Starts a graceful shutdown (safe from a signal handler); a second call hurries it."""
        if self._stopping:
            self._stop_deadline = time.monotonic()
            return
        self._stop_reason = reason
        self._stop_deadline = time.monotonic() + self.config.shutdown_timeout
        self._stopping = True

    def run(self):
        """Serves until shut down.

        Returns:
          (exit_status, message): 0 after a graceful shutdown; 1 with the reason when no worker
          could load the model.

        Raises:
          ValueError: a port cannot be bound (in use, or a bad -bind_address).
        """
        self._bind()
        try:
            if self.config.http_port:
                from serving import http
                self._http = http.HttpFrontend(
                    self._context, self._http_address, self.config.bind_address,
                    self.config.http_port, self.config.cors, self.config.max_request_bytes)
                self._http.start()
            for slot in self._slots:
                self._start_worker(slot)
            logging.info("listening on tcp://%s:%d (results on %d%s); loading the model in %d "
                         "worker(s)", self.config.bind_address, self.config.port,
                         self.config.port_out, ", HTTP on %d" % self.config.http_port
                         if self.config.http_port else "", len(self._slots))
            self._loop()
        finally:
            self._final = True
            self._stop_workers()
            if self._http is not None:
                self._http.stop()
            self._close()
        if self._fatal:
            return 1, self._fatal
        return 0, None

    def _bind(self):
        self._context = zmq.Context()
        self._tmp_dir = tempfile.mkdtemp(prefix="bert-serve-")
        self._worker_address = "ipc://" + os.path.join(self._tmp_dir, "workers")
        self._http_address = "inproc://http-%d" % id(self)
        # Requests over -max_request_bytes are read and answered 413; only absurd ones, beyond
        # this ceiling, make ZeroMQ drop the connection (the client then times out).
        ceiling = max(16 * self.config.max_request_bytes, _MAX_MESSAGE_BYTES)
        self._pull = self._socket(zmq.PULL, maxmsgsize=ceiling)
        self._xpub = self._socket(zmq.XPUB, sndhwm=100000, linger=2000)
        self._router = self._socket(zmq.ROUTER, linger=0)
        self._http_in = self._socket(zmq.PULL, linger=0)
        host = self.config.bind_address
        for sock, address, flag in (
                (self._pull, "tcp://%s:%d" % (host, self.config.port), "-port"),
                (self._xpub, "tcp://%s:%d" % (host, self.config.port_out), "-port_out"),
                (self._router, self._worker_address, None),
                (self._http_in, self._http_address, None)):
            try:
                sock.bind(address)
            except zmq.ZMQError as e:
                self._close()
                raise ValueError("cannot listen on %s (%s); pick another %s or -bind_address"
                                 % (address, e, flag)) from None
        self._poller = zmq.Poller()
        for sock in (self._pull, self._xpub, self._router, self._http_in):
            self._poller.register(sock, zmq.POLLIN)

    def _socket(self, kind, maxmsgsize=None, sndhwm=None, linger=0):
        sock = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, linger)
        if maxmsgsize:
            sock.setsockopt(zmq.MAXMSGSIZE, maxmsgsize)
        if sndhwm:
            sock.setsockopt(zmq.SNDHWM, sndhwm)
        return sock

    def _close(self):
        for name in ("_pull", "_xpub", "_router", "_http_in"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close()
        # term() waits for every socket of the context: only once the HTTP thread closed its own.
        if self._context is not None and (self._http is None or self._http.stopped):
            self._context.term()
            self._context = None
        shutil.rmtree(getattr(self, "_tmp_dir", ""), ignore_errors=True)

    def _loop(self):
        while True:
            events = dict(self._poller.poll(_POLL_MS))
            if self._xpub in events:
                self._read_subscriptions()
            if self._pull in events:
                self._drain(self._pull, self._on_client_frames)
            if self._http_in in events:
                self._drain(self._http_in, self._on_http_frames)
            if self._router in events:
                self._drain(self._router, self._on_worker_frames)
            self._check_workers()
            self._dispatch()
            self._flush_held()
            if self._fatal:
                self._fail_all(503, self._fatal)
                return
            if self._stopping and self._finish_stopping():
                return

    def _drain(self, sock, handler):
        for _ in range(_MESSAGES_PER_ROUND):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handler(frames)

    def _finish_stopping(self):
        """True when the shutdown can complete: nothing open, or the deadline passed."""
        if time.monotonic() >= self._stop_deadline and self._open:
            self._fail_all(503, "the server stopped (-shutdown_timeout=%gs) before this request "
                           "finished; send it again" % self.config.shutdown_timeout)
        if self._open or (self._held and time.monotonic() < self._stop_deadline):
            return False  # held replies wait (at most _SUBSCRIBE_WAIT_S) for their clients
        self._flush_held(force=True)
        logging.info("stopped (%s): %d requests answered, %d error replies; bye",
                     self._stop_reason, self._counters["num_answered_request"],
                     self._counters["num_error_reply"])
        return True

    def _fail_all(self, status, message):
        for request in list(self._open.values()):
            self._fail(request, status, message)
        self._flush_held(force=True)

    # -- clients -------------------------------------------------------------------------------

    def _on_client_frames(self, frames):
        try:
            message = protocol.parse_client_frames(frames)
        except protocol.MalformedMessage as e:
            self._counters["num_malformed_message"] += 1
            logging.warning("%s", e.message)
            if e.identity is not None:
                self._reply_error_zmq(e.identity, e.request_id, e.status, e.message)
            return
        self._note_client(message.identity)
        if message.is_command:
            self._counters["num_sys_request"] += 1
            if message.payload == protocol.CMD_TERMINATE:
                logging.info("TERMINATION command from client %r", message.identity)
                self.request_shutdown("TERMINATION command")
                return
            status = self.status(message.identity, message.payload == protocol.CMD_SHOW_STATUS)
            self._publish(message.identity,
                          protocol.json_reply(message.identity, message.request_id, status))
            return
        self._counters["num_data_request"] += 1
        try:
            if len(message.payload) > self.config.max_request_bytes:
                raise protocol.RequestError(
                    413, "request of %d bytes exceeds -max_request_bytes=%d; split it"
                    % (len(message.payload), self.config.max_request_bytes))
            texts = protocol.decode_payload(message.payload)
            self._admit(texts, Request("zmq", "encode", 0, identity=message.identity,
                                       request_id=message.request_id,
                                       with_tokens=self.config.show_tokens_to_client))
        except protocol.RequestError as e:
            self._reply_error_zmq(message.identity, message.request_id, e.status, e.message)

    def _note_client(self, identity):
        self._clients.pop(identity, None)
        self._clients[identity] = time.monotonic()
        if len(self._clients) > _MAX_TRACKED_CLIENTS:
            self._clients.popitem(last=False)
            self._counters["num_forgotten_client"] += 1

    def _admit(self, texts, request):
        """Validates, tokenizes and queues a request, or raises RequestError."""
        if self._stopping:
            raise protocol.RequestError(503, "server is shutting down and accepts no new request; "
                                        "send it to another server or after the restart")
        self._check_kind(request.kind)
        if self.model.is_task_predictor:
            protocol.validate_task_inputs(texts, self.config.max_queue_size)
        else:
            is_tokenized = protocol.validate_texts(texts, self.config.max_queue_size)
        waiting = len(self._queue)
        if waiting + len(texts) > self.config.max_queue_size:
            self._counters["num_busy_reply"] += 1
            raise protocol.RequestError(503, "server busy: %d sentences are waiting and %d more "
                                        "would pass -max_queue_size=%d; retry later"
                                        % (waiting, len(texts), self.config.max_queue_size))
        if self.model.is_task_predictor:
            sentences = [features.RawInput(text) for text in texts]
        else:
            sentences = self._featurizer.featurize(texts, is_tokenized)
        request.size = request.remaining = len(sentences)
        request.outputs = [None] * request.size
        request.max_length = max(len(s) for s in sentences)
        if request.with_tokens and not self.model.is_task_predictor:
            request.tokens = [s.tokens for s in sentences]
        self._counters["num_total_seq"] += request.size
        self._open[id(request)] = request
        self._queue.add(request, sentences)

    def _check_kind(self, kind):
        if self.model.is_task_predictor and kind != "predict":
            raise protocol.RequestError(
                400, "this server runs a %r export whose answers are not vectors; send the texts "
                "to HTTP POST /predict (start serve.py with -http_port)" % self.model.export_task)
        if kind == "predict" and not (self.model.is_classifier or self.model.is_task_predictor):
            raise protocol.RequestError(400, "this server runs an encoder, not a classifier; use "
                                        "/encode (or start serve.py with a classifier model)")

    # -- HTTP ----------------------------------------------------------------------------------

    def _on_http_frames(self, frames):
        kind, http_id, body = frames[0].decode("ascii"), int(frames[1]), frames[2]
        if kind == "status":
            self._counters["num_sys_request"] += 1
            self._http.resolve(http_id, {"status": 200, "body": self.status(b"http", True)})
            return
        self._counters["num_data_request"] += 1
        user_id = None
        try:
            payload = protocol.decode_payload(body)
            if not isinstance(payload, dict) or "texts" not in payload:
                raise protocol.RequestError(400, 'the body must be a JSON object with "texts" (and '
                                            'optionally "id", "is_tokenized", "show_tokens")')
            user_id = payload.get("id")
            request = Request("http", kind, 0, http_id=http_id, user_id=user_id,
                              with_tokens=self._http_tokens(payload))
            self._check_is_tokenized(payload)
            self._admit(payload["texts"], request)
        except protocol.RequestError as e:
            self._counters["num_error_reply"] += 1
            self._http.resolve(http_id, {"status": e.status,
                                         "body": {"id": user_id, "status": e.status,
                                                  "error": e.message}})

    def _http_tokens(self, payload):
        wanted = bool(payload.get("show_tokens", False))
        if wanted and not self.config.show_tokens_to_client:
            raise protocol.RequestError(400, '"show_tokens" needs a server started with '
                                        '-show_tokens_to_client')
        return wanted

    @staticmethod
    def _check_is_tokenized(payload):
        said = payload.get("is_tokenized")
        texts = payload["texts"]
        if said is None or not isinstance(texts, list) or not texts:
            return
        found = isinstance(texts[0], list)
        if bool(said) != found:
            raise protocol.RequestError(400, '"is_tokenized" is %s but texts[0] is %s; send token '
                                        'lists with true, strings with false'
                                        % (json.dumps(bool(said)),
                                           "a token list" if found else "a string"))

    # -- workers -------------------------------------------------------------------------------

    def _worker_settings(self, slot):
        c = self.config
        return {"identity": slot.identity.decode("ascii"), "address": self._worker_address,
                "parent_pid": os.getpid(), "spec": self.model.to_dict(),
                "pooling_strategy": c.pooling_strategy, "pooling_layer": list(c.pooling_layer),
                "max_batch_size": c.max_batch_size, "num_threads": slot.threads, "xla": c.xla,
                "fp16": c.fp16, "verbose": c.verbose}

    def _start_worker(self, slot):
        slot.generation += 1
        slot.identity = b"w%d.%d" % (slot.index, slot.generation)
        env = dict(os.environ)
        # Each worker sees only its own GPU (or none), as bert-as-service's device map did.
        env["CUDA_VISIBLE_DEVICES"] = str(slot.device) if slot.device >= 0 else "-1"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if self.config.verbose else "2")
        command = self._worker_command + [json.dumps(self._worker_settings(slot))]
        slot.process = subprocess.Popen(command, env=env, cwd=REPO_ROOT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        slot.started_at = time.monotonic()
        slot.ready = False
        slot.restart_at = None
        slot.fatal_message = None
        self._by_identity = {s.identity: s for s in self._slots if s.process is not None}
        logging.info("worker %d: started pid %d on %s (%d threads)", slot.index,
                     slot.process.pid, "cpu" if slot.device < 0 else "gpu %d" % slot.device,
                     slot.threads)

    def _on_worker_frames(self, frames):
        slot = self._by_identity.get(frames[0])
        if slot is None or slot.process is None or len(frames) < 2:
            return  # from a worker that was already given up on
        command = frames[1]
        if command == protocol.W_READY:
            self._on_ready(slot, json.loads(frames[2]))
        elif command == protocol.W_FATAL:
            slot.fatal_message = frames[2].decode("utf-8", "replace")
            logging.error("worker %d cannot load the model: %s", slot.index, slot.fatal_message)
        elif command == protocol.W_RESULT:
            self._timed(slot, frames[2], frames[3])
            self._on_result(slot, frames[2], protocol.unpack_arrays(frames[4:]))
        elif command == protocol.W_ANSWERS:
            self._timed(slot, frames[2], frames[3])
            answers = json.loads(frames[4].decode("utf-8"))
            self._on_result(slot, frames[2], {"answer": answers})
        elif command == protocol.W_FAILED:
            items = slot.inflight.pop(frames[2], [])
            slot.batch_tokens.pop(frames[2], None)
            message = frames[3].decode("utf-8", "replace")
            logging.error("worker %d: a batch failed: %s", slot.index, message)
            for request in {id(i.request): i.request for i in items}.values():
                self._fail(request, 500, "the model failed on this request: %s" % message)

    def _timed(self, slot, batch_id, seconds):
        tokens = slot.batch_tokens.pop(batch_id, None)
        if tokens is not None:
            slot.cost.add(tokens, float(seconds))

    def _on_ready(self, slot, info):
        slot.ready = slot.ever_ready = True
        slot.load_failures = 0
        slot.info = info
        logging.info("worker %d: ready (pid %d, model loaded in %.1fs)", slot.index,
                     slot.process.pid, info.get("load_seconds", 0.0))
        if not self._ever_ready and all(s.ready for s in self._slots):
            self._ever_ready = True
            logging.info("all %d workers ready: serving", len(self._slots))

    def _on_result(self, slot, batch_id, outputs):
        """Hands a batch's rows (dict name -> array or list, one row per item) to requests."""
        items = slot.inflight.pop(batch_id, None)
        if items is None:
            return
        for row, item in enumerate(items):
            request = item.request
            if request.done or request.outputs[item.index] is not None:
                continue
            request.outputs[item.index] = {name: _row(values, row, item.length)
                                           for name, values in outputs.items()}
            request.remaining -= 1
            if request.remaining == 0:
                self._complete(request)

    def _check_workers(self):
        now = time.monotonic()
        for slot in self._slots:
            if slot.process is None:
                if slot.restart_at is not None and now >= slot.restart_at and not self._final:
                    self._start_worker(slot)
                continue
            status = slot.process.poll()
            if status is None and not slot.ready and now - slot.started_at > \
                    self.config.load_timeout:
                slot.fatal_message = slot.fatal_message or (
                    "the model did not load within -load_timeout=%gs" % self.config.load_timeout)
                logging.error("worker %d: %s; killing it", slot.index, slot.fatal_message)
                slot.process.kill()
                status = slot.process.wait()
            if status is not None:
                self._on_worker_exit(slot, status)

    def _on_worker_exit(self, slot, status):
        was_ready = slot.ready
        pid = slot.process.pid
        slot.process, slot.ready = None, False
        batches, slot.inflight = list(slot.inflight.values()), {}
        slot.batch_tokens = {}
        self._retry_or_fail(batches)
        if was_ready:
            slot.restarts += 1
            self._counters["num_worker_restart"] += 1
            logging.warning("worker %d (pid %d) exited with status %s; %d in-flight batch(es) "
                            "re-queued; restarting it", slot.index, pid, status, len(batches))
            slot.restart_at = time.monotonic()
        else:
            slot.load_failures += 1
            if not self._ever_ready and slot.fatal_message:
                self._fatal = "worker could not load the model: %s" % slot.fatal_message
            elif slot.load_failures >= _MAX_LOAD_FAILURES:
                slot.disabled = True
                logging.error("worker %d failed to start %d times in a row (%s); giving up on "
                              "it", slot.index, slot.load_failures, slot.fatal_message)
            else:
                slot.restart_at = time.monotonic() + slot.load_failures
        if all(s.disabled for s in self._slots):
            self._fatal = "no worker could load the model (last error: %s)" % slot.fatal_message

    def _retry_or_fail(self, batches):
        retries = self.config.batch_retries
        for items in batches:
            live = [item for item in items if not item.request.done]
            again = [item for item in live if item.attempts <= retries]
            for item in live:
                if item.attempts > retries and not item.request.done:
                    self._fail(item.request, 500, "a worker process died %d times while running "
                               "this request (-batch_retries=%d); not retried again, see the "
                               "server log" % (item.attempts, retries))
            if again:
                self._counters["num_retried_batch"] += 1
                self._queue.requeue(again)

    def _dispatch(self):
        ready = [s for s in self._slots if s.ready]
        if not ready or not len(self._queue):
            return
        # An idle worker gets an equal share of what waits (a big request runs on all workers at
        # once). A busy one gets a second batch only when a full one waits: smaller requests
        # wait for its answer and go out together as one bigger batch.
        idle = [s for s in ready if not s.inflight]
        fixed = self.model.fixed_length
        for k, slot in enumerate(idle):
            if len(self._queue):
                share = math.ceil(len(self._queue) / (len(idle) - k))
                self._send_batch(slot, self._queue.cut(share, slot.cost.overhead_tokens, fixed))
        for slot in sorted(ready, key=lambda s: len(s.inflight)):
            while (len(slot.inflight) < _IN_FLIGHT_PER_WORKER
                   and len(self._queue) >= self.config.max_batch_size):
                self._send_batch(slot, self._queue.cut(None, slot.cost.overhead_tokens, fixed))

    def _send_batch(self, slot, items):
        if not items:
            return
        self._batch_ids += 1
        batch_id = b"%d" % self._batch_ids
        for item in items:
            item.attempts += 1
        slot.inflight[batch_id] = items
        self._counters["num_batch"] += 1
        self._counters["num_batched_seq"] += len(items)
        if self.model.is_task_predictor:
            inputs = json.dumps([item.features.value for item in items]).encode("utf-8")
            slot.batch_tokens[batch_id] = sum(item.length for item in items)
            self._router.send_multipart([slot.identity, protocol.W_INPUTS, batch_id, inputs])
            return
        length = self.model.fixed_length or max(item.length for item in items)
        slot.batch_tokens[batch_id] = length * len(items)
        arrays = features.pad_batch([item.features for item in items], length)
        self._router.send_multipart([slot.identity, protocol.W_BATCH, batch_id]
                                    + protocol.pack_arrays(arrays))

    def _stop_workers(self):
        for slot in self._slots:
            if slot.process is None:
                continue
            if slot.ready:
                self._router.send_multipart([slot.identity, protocol.W_STOP])
            else:
                slot.process.terminate()
        deadline = time.monotonic() + _WORKER_STOP_WAIT_S
        for slot in self._slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logging.warning("worker %d did not stop; killing it", slot.index)
                slot.process.kill()
                try:
                    slot.process.wait(timeout=_WORKER_STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    logging.error("worker %d (pid %d) survived SIGKILL for %gs; leaving it",
                                  slot.index, slot.process.pid, _WORKER_STOP_WAIT_S)
            slot.process = None

    # -- answers -------------------------------------------------------------------------------

    def _complete(self, request):
        request.done = True
        self._open.pop(id(request), None)
        self._counters["num_answered_request"] += 1
        self._counters["num_answered_seq"] += request.size
        self._latencies.append(time.monotonic() - request.started)
        if self.progress is not None:
            self.progress.update(request.size)
        if request.kind == "predict":
            result = self._predictions(request)
        else:
            result = self._result_array(request)
        if request.origin == "zmq":
            self._publish(request.identity, protocol.ndarray_reply(
                request.identity, request.request_id, result, request.tokens))
            return
        body = {"id": request.user_id, "status": 200,
                "result": result if isinstance(result, list) else result.tolist()}
        if request.with_tokens:
            body["tokens"] = request.tokens
        self._http.resolve(request.http_id, {"status": 200, "body": body})

    def _result_array(self, request):
        name = "encodes" if "encodes" in request.outputs[0] else "probabilities"
        rows = [output[name] for output in request.outputs]
        if rows[0].ndim == 1:
            return np.stack(rows)
        # Pooling NONE: [texts, length, dim], zero-padded to max_seq_len, or to the request's
        # longest sentence when max_seq_len is NONE (bert-as-service's shapes).
        length = self.config.max_seq_len or request.max_length
        out = np.zeros([len(rows), length, rows[0].shape[-1]], dtype=rows[0].dtype)
        for i, row in enumerate(rows):
            out[i, :len(row)] = row
        return out

    def _predictions(self, request):
        if self.model.is_task_predictor:
            return [output["answer"] for output in request.outputs]
        labels = self.model.labels
        results = []
        for output in request.outputs:
            probabilities = output["probabilities"]
            results.append({"label": labels[int(np.argmax(probabilities))],
                            "probabilities": {label: float(p)
                                              for label, p in zip(labels, probabilities)}})
        return results

    def _fail(self, request, status, message):
        if request.done:
            return
        request.done = True
        self._open.pop(id(request), None)
        self._queue.discard(request)
        self._counters["num_failed_request"] += 1
        if request.origin == "zmq":
            self._reply_error_zmq(request.identity, request.request_id, status, message)
        else:
            self._counters["num_error_reply"] += 1
            self._http.resolve(request.http_id, {"status": status, "body": {
                "id": request.user_id, "status": status, "error": message}})

    def _reply_error_zmq(self, identity, request_id, status, message):
        self._counters["num_error_reply"] += 1
        self._publish(identity, protocol.error_reply(identity, request_id, status, message))

    def _publish(self, identity, frames):
        if identity in self._subscribed:
            self._xpub.send_multipart(frames)
        elif identity in self._gone:
            self._counters["num_reply_without_subscriber"] += 1
            logging.info("client %r disconnected before its reply", identity)
        else:
            self._held.append((time.monotonic() + _SUBSCRIBE_WAIT_S, identity, frames))

    def _read_subscriptions(self):
        for _ in range(_MESSAGES_PER_ROUND):
            try:
                event = self._xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = event[1:]
            if event[:1] == b"\x01":
                self._subscribed.add(identity)
                self._gone.pop(identity, None)
            elif event[:1] == b"\x00":
                self._subscribed.discard(identity)
                self._gone[identity] = True
                if len(self._gone) > _MAX_TRACKED_CLIENTS:
                    self._gone.popitem(last=False)

    def _flush_held(self, force=False):
        if not self._held:
            return
        now = time.monotonic()
        waiting = []
        for deadline, identity, frames in self._held:
            if identity in self._subscribed or identity in self._gone or force or now >= deadline:
                if identity not in self._subscribed:
                    self._counters["num_reply_without_subscriber"] += 1
                    logging.warning("client %r never subscribed to port_out; its reply is lost",
                                    identity)
                self._xpub.send_multipart(frames)
            else:
                waiting.append((deadline, identity, frames))
        self._held = waiting

    # -- status --------------------------------------------------------------------------------

    def status(self, client, with_statistic):
        """SHOW_CONFIG / SHOW_STATUS: bert-as-service's fields plus this server's state."""
        import platform
        fields = self.config.status_fields()
        fields.update({
            "server_version": protocol.PROTOCOL_VERSION,
            "server": "serve.py (TensorFlow 2.15 BERT)",
            "client": client.decode("ascii", "replace"),
            "python_version": platform.python_version(),
            "pyzmq_version": zmq.pyzmq_version(), "zmq_version": zmq.zmq_version(),
            "tensorflow_version": next((s.info.get("tensorflow_version") for s in self._slots
                                        if s.info), None),
            "server_start_time": self._start_time,
            "server_current_time": str(datetime.now()),
            "num_process": 1 + len(self._slots),
            "device_map": [s.device for s in self._slots],
            "model": {"kind": self.model.kind, "hidden_size": self.model.hidden_size,
                      "max_length": self.model.max_length, "labels": self.model.labels,
                      "checkpoint": self.model.checkpoint,
                      "saved_model_dir": self.model.saved_model_dir},
            "ready": any(s.ready for s in self._slots),
            "state": "stopping" if self._stopping else (
                "serving" if self._ever_ready else "loading"),
            "workers": [s.describe() for s in self._slots],
        })
        if with_statistic:
            fields["statistic"] = self.statistics()
        return fields

    def statistics(self):
        """SHOW_STATUS's "statistic": requests, sentences, errors, restarts, latency."""
        now = time.monotonic()
        stats = {name: self._counters[name] for name in (
            "num_data_request", "num_total_seq", "num_sys_request", "num_answered_request",
            "num_answered_seq", "num_error_reply", "num_busy_reply", "num_failed_request",
            "num_malformed_message", "num_retried_batch", "num_worker_restart",
            "num_reply_without_subscriber", "num_batch")}
        if stats["num_batch"]:
            stats["avg_batch_size"] = round(self._counters["num_batched_seq"] / stats["num_batch"],
                                            2)
        stats["num_total_request"] = stats["num_data_request"] + stats["num_sys_request"]
        stats["num_total_client"] = len(self._clients) + self._counters["num_forgotten_client"]
        stats["num_active_client"] = sum(1 for t in self._clients.values()
                                         if now - t < _ACTIVE_CLIENT_S)
        stats["num_open_request"] = len(self._open)
        stats["num_waiting_seq"] = len(self._queue)
        stats["num_in_flight_batch"] = sum(len(s.inflight) for s in self._slots)
        if self._latencies:
            p50, p90, p99 = np.percentile(list(self._latencies), [50, 90, 99])
            stats.update(latency_p50_ms=round(1000 * p50, 2), latency_p90_ms=round(1000 * p90, 2),
                         latency_p99_ms=round(1000 * p99, 2))
        return stats
