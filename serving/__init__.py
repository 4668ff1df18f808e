"""The sentence-encoding and prediction service behind serve.py (bert-as-service's protocol).

Modules, from the wire inwards:
- `protocol`: the ZeroMQ message formats that `bert-serving-client` 1.10 speaks (requests, the
  ndarray reply and its JSON header, config/status replies, error replies) and the frames between
  the frontend and its workers. No TensorFlow.
- `config`: `ServeConfig`, every setting of a server, validated once before anything starts.
- `features`: texts or pre-tokenized lists -> WordPiece ids, as the model expects them.
- `batching`: the bounded queue of tokenized sentences and the length-grouped batch cutter.
- `pooling`: bert-as-service's pooling strategies over encoder layer outputs (NumPy).
- `server`: the frontend process: sockets, queue, dispatch, replies, worker restarts, shutdown.
- `workers`: the worker process (`python -m serving.workers`), one loaded model each.
- `http`: the HTTP/JSON API (aiohttp) in a thread of the frontend.

Only `serve.py` reads flags; everything here takes plain arguments.
"""
