"""The HTTP/JSON API (aiohttp), run in a thread of the frontend process.

    POST /encode   {"id": 123, "texts": ["hello world", ...], "is_tokenized": false}
                   -> 200 {"id": 123, "result": [[...], ...], "status": 200}
    POST /predict  {"id": 7, "texts": ["a great film"]}  (classifier models)
                   -> 200 {"id": 7, "status": 200,
                           "result": [{"label": "positive", "probabilities": {...}}]}
                   other tasks' exports (NER, SQuAD, ...): their predictor's answers, e.g.
                   {"texts": [["Who built it?", "It was built by Ann."]]} for SQuAD
    GET /status/server -> the SHOW_STATUS dict

An error answers with its HTTP status and `{"id": ..., "status": <code>, "error": "<message>"}`:
400 bad JSON/texts, 413 too large, 415 not application/json, 503 busy or shutting down, 500 a
model failure. Requests go into the same queue as ZeroMQ clients' (and share its limits): the
handler sends the raw body over an in-process socket to the frontend loop, which parses,
validates, batches and answers through `resolve`, from its own thread.
"""

import asyncio
import itertools
import json
import threading

import zmq
from absl import logging
from aiohttp import web

_START_TIMEOUT_S = 30.0


class HttpFrontend:
    """An aiohttp server in a daemon thread that forwards requests to the frontend loop.

    Args:
      context: the frontend's zmq.Context (the in-process socket must share it).
      address: the frontend's inproc:// PULL address.
      host: address to listen on.
      port: TCP port.
      cors: the Access-Control-Allow-Origin value ("" for none).
      max_body_bytes: bodies above this get 413.
    """

    def __init__(self, context, address, host, port, cors, max_body_bytes):
        self._context = context
        self._address = address
        self._host = host
        self._port = port
        self._cors = cors
        self._max_body_bytes = max_body_bytes
        self._ids = itertools.count(1)
        self._pending = {}
        self._loop = None
        self._thread = None
        self._started = threading.Event()
        self._error = None

    # -- called from the frontend thread -------------------------------------------------------

    def start(self):
        """Starts the thread and waits until it listens.

        Raises:
          ValueError: the port cannot be bound.
        """
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S):
            raise ValueError("the HTTP server did not start within %gs" % _START_TIMEOUT_S)
        if self._error is not None:
            raise ValueError("cannot serve HTTP on %s:%d (%s); pick another -http_port"
                             % (self._host, self._port, self._error))

    def resolve(self, http_id, answer):
        """Hands an answer ({"status": code, "body": JSON-ready}) to its waiting handler."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_answer, http_id, answer)

    def stop(self):
        """Stops the server thread (waiting up to 10 s); `stopped` tells whether it ended."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if self._thread.is_alive():
            logging.warning("the HTTP thread did not stop within 10 s")

    @property
    def stopped(self):
        return self._thread is None or not self._thread.is_alive()

    # -- the HTTP thread -----------------------------------------------------------------------

    def _run(self):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._push = self._context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 0)
        self._push.connect(self._address)
        runner = web.AppRunner(self._app(), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self._host, self._port).start())
        except OSError as e:
            self._error = e
            self._started.set()
            loop.run_until_complete(runner.cleanup())
            self._push.close()
            return
        self._loop = loop
        self._started.set()
        try:
            loop.run_forever()
        finally:
            for future in self._pending.values():
                future.cancel()
            loop.run_until_complete(runner.cleanup())
            self._push.close()
            loop.close()

    def _app(self):
        app = web.Application(client_max_size=self._max_body_bytes,
                              middlewares=[self._cors_middleware])
        app.router.add_post("/encode", self._encode)
        app.router.add_post("/predict", self._predict)
        app.router.add_get("/status/server", self._status)
        return app

    @web.middleware
    async def _cors_middleware(self, request, handler):
        if request.method == "OPTIONS":
            response = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        else:
            response = await handler(request)
        if self._cors:
            response.headers["Access-Control-Allow-Origin"] = self._cors
        return response

    def _set_answer(self, http_id, answer):
        future = self._pending.pop(http_id, None)
        if future is not None and not future.done():
            future.set_result(answer)

    async def _forward(self, kind, body):
        http_id = next(self._ids)
        future = self._loop.create_future()
        self._pending[http_id] = future
        try:
            self._push.send_multipart([kind, b"%d" % http_id, body], zmq.NOBLOCK)
        except zmq.Again:
            self._pending.pop(http_id, None)
            return _json(503, {"status": 503, "error": "server busy: the request channel is "
                               "full; retry later"})
        answer = await future
        return _json(answer["status"], answer["body"])

    async def _read_json_body(self, request):
        if request.content_type != "application/json":
            return None, _json(415, {"status": 415, "error": "Content-Type must be "
                                     "application/json, got %r" % request.content_type})
        try:
            return await request.read(), None
        except web.HTTPRequestEntityTooLarge:
            return None, _json(413, {"status": 413, "error": "body exceeds -max_request_bytes=%d"
                                     % self._max_body_bytes})

    async def _encode(self, request):
        body, error = await self._read_json_body(request)
        return error or await self._forward(b"encode", body)

    async def _predict(self, request):
        body, error = await self._read_json_body(request)
        return error or await self._forward(b"predict", body)

    async def _status(self, request):
        del request
        return await self._forward(b"status", b"")


def _json(status, body):
    if status >= 500:
        logging.warning("HTTP %d: %s", status, body.get("error") if isinstance(body, dict) else "")
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
