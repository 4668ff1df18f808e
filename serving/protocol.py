"""Wire formats: bert-serving-client 1.10 <-> frontend, and frontend <-> worker processes.

Client -> server (a PUSH socket to `port`): four frames
    [identity, payload, request_id, message_length]
where `payload` is the JSON list of texts (or of token lists), or one of the commands SHOW_CONFIG,
SHOW_STATUS, TERMINATION; `request_id` and `message_length` are ASCII decimal numbers.

Server -> client (a PUB socket on `port_out`; the client SUBscribes to its identity):
    encodings:      [identity, header, array bytes, request_id], header = JSON
                    {"dtype": "float32", "shape": [...], "tokens": [[...], ...] or ""}
    config/status:  [identity, JSON object, request_id]
An error is an encodings reply whose header carries `"status"` and `"error"`, and whose `dtype`
field holds the message itself (commas replaced): the unmodified client passes `dtype` to
`np.frombuffer`, which raises `TypeError: data type '<message>' not understood`, so the error
reaches the caller's code instead of leaving it waiting.

Frontend <-> worker (ROUTER/DEALER over a local ipc:// socket): the first frame is a command
(`READY`, `FATAL`, `BATCH`, `RESULT`, `FAILED`, `STOP`, `INPUTS`, `ANSWERS`), then a batch id
where it applies (RESULT and ANSWERS then carry the seconds the model took), then arrays as one
JSON header frame plus one raw frame per array (`pack_arrays`), or JSON for INPUTS/ANSWERS.
"""

import json

import numpy as np

# The version the client checks (`server_version` in SHOW_CONFIG) is the protocol's.
PROTOCOL_VERSION = "1.10.0"

CMD_SHOW_CONFIG = b"SHOW_CONFIG"
CMD_SHOW_STATUS = b"SHOW_STATUS"
CMD_TERMINATE = b"TERMINATION"
COMMANDS = (CMD_SHOW_CONFIG, CMD_SHOW_STATUS, CMD_TERMINATE)

# Frontend <-> worker commands.
W_READY = b"READY"
W_FATAL = b"FATAL"
W_BATCH = b"BATCH"
W_RESULT = b"RESULT"
W_FAILED = b"FAILED"
W_STOP = b"STOP"
# Other tasks' exports (raw inputs in, JSON answers out: their predictor tokenizes).
W_INPUTS = b"INPUTS"
W_ANSWERS = b"ANSWERS"

# The separator token of a pre-tokenized sentence pair, as bert-as-service reads it.
PAIR_SEPARATOR = "|||"


class RequestError(Exception):
    """A request that cannot be served; the client gets `status` and `message` back."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class ClientRequest:
    """One parsed client message: who sent it, which request id, and what it holds."""

    __slots__ = ("identity", "request_id", "payload", "message_length")

    def __init__(self, identity, request_id, payload, message_length):
        self.identity = identity
        self.request_id = request_id
        self.payload = payload
        self.message_length = message_length

    @property
    def is_command(self):
        return self.payload in COMMANDS


class MalformedMessage(RequestError):
    """A client message with the wrong frames. `identity`/`request_id` are None if unaddressable."""

    def __init__(self, message, identity=None, request_id=None):
        super().__init__(400, message)
        self.identity = identity
        self.request_id = request_id


def parse_client_frames(frames):
    """Splits a client message into a `ClientRequest`.

    Args:
      frames: list of bytes, as received from the PULL socket.

    Returns:
      ClientRequest.

    Raises:
      MalformedMessage: not four frames or a non-numeric request id or length. Its `identity`
        and `request_id` are set when the message still says whom to answer (first frame and a
        numeric last frame), so that client gets an error reply.
    """
    if len(frames) == 4 and frames[2].isdigit() and frames[3].isdigit():
        identity, payload, request_id, length = frames
        return ClientRequest(identity, request_id, payload, int(length))
    addressable = len(frames) >= 2 and frames[-1].isdigit() and 0 < len(frames[0]) <= 256
    message = ("malformed message: expected 4 frames [identity, payload, request id, length] with "
               "numeric request id and length, got %d frame(s); use bert-serving-client or follow "
               "its message format" % len(frames))
    if addressable:
        raise MalformedMessage(message, identity=frames[0], request_id=frames[-1])
    raise MalformedMessage(message)


def decode_payload(payload):
    """UTF-8 JSON bytes -> Python object.

    Raises:
      RequestError: 400, not UTF-8 (naming the byte offset) or not JSON.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, "request is not valid UTF-8 (%s at byte %d); send UTF-8 JSON"
                           % (e.reason, e.start)) from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise RequestError(400, "request is not valid JSON (%s); send a JSON list of strings"
                           % e) from None


def validate_texts(texts, max_texts=None):
    """Checks the texts of an encode request and tells whether they are pre-tokenized.

    Like bert-as-service, a list of strings is raw text (`A ||| B` is a pair) and a list of lists
    of strings is pre-tokenized (a `|||` token separates a pair). Unlike it, empty texts are
    refused instead of silently dropped (which made its reply never complete).

    Args:
      texts: the decoded JSON value.
      max_texts: (optional) the most texts one request may hold.

    Returns:
      is_tokenized: bool.

    Raises:
      RequestError: 400 naming the first bad element, or 413 for too many texts.
    """
    if not isinstance(texts, list):
        raise RequestError(400, "texts must be a JSON list of strings (or of token lists), got %s"
                           % type(texts).__name__)
    if not texts:
        raise RequestError(400, "texts is an empty list; send at least one non-empty string")
    if max_texts is not None and len(texts) > max_texts:
        raise RequestError(413, "request holds %d texts, more than the server's queue limit "
                           "(-max_queue_size=%d); split it into smaller requests"
                           % (len(texts), max_texts))
    is_tokenized = isinstance(texts[0], list)
    for i, text in enumerate(texts):
        if is_tokenized:
            _check_token_list(i, text)
        elif not isinstance(text, str):
            raise RequestError(400, "texts[%d] is %s, not a string; send all strings or all "
                               "token lists" % (i, type(text).__name__))
        elif not text.strip():
            raise RequestError(400, "texts[%d] is empty or blank; remove it or send some text" % i)
    return is_tokenized


def validate_task_inputs(inputs, max_inputs=None):
    """Checks the inputs of a /predict request for another task's export (e.g. NER, SQuAD).

    Each input is a non-blank string or a list of them (e.g. [question, context]); the task's
    predictor gives them their meaning.

    Raises:
      RequestError: 400 naming the first bad element, or 413 for too many.
    """
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, "texts must be a non-empty JSON list of strings (or of lists of "
                           "strings, e.g. [question, context])")
    if max_inputs is not None and len(inputs) > max_inputs:
        raise RequestError(413, "request holds %d texts, more than the server's queue limit "
                           "(-max_queue_size=%d); split it into smaller requests"
                           % (len(inputs), max_inputs))
    for i, item in enumerate(inputs):
        parts = item if isinstance(item, list) else [item]
        if not parts or not all(isinstance(p, str) and p.strip() for p in parts):
            raise RequestError(400, "texts[%d] is %r; send a non-blank string or a list of them"
                               % (i, item))


def _check_token_list(i, tokens):
    if not isinstance(tokens, list):
        raise RequestError(400, "texts[%d] is %s, but texts[0] is a token list; send all strings "
                           "or all token lists" % (i, type(tokens).__name__))
    if not tokens:
        raise RequestError(400, "texts[%d] is an empty token list; send at least one token" % i)
    for j, token in enumerate(tokens):
        if not isinstance(token, str) or not token.strip():
            raise RequestError(400, "texts[%d][%d] is %r; every token must be a non-empty string"
                               % (i, j, token))


# ------------------------------------------------------------------------------------------------
# Replies to clients.
# ------------------------------------------------------------------------------------------------


def ndarray_reply(identity, request_id, array, tokens=None):
    """Frames of an encodings reply: [identity, JSON header, raw C-order bytes, request id].

    Args:
      array: np.ndarray, any dtype and shape (the header carries both).
      tokens: (optional) list of per-text token lists, sent when the server shows tokens.
    """
    array = np.ascontiguousarray(array)
    header = {"dtype": str(array.dtype), "shape": list(array.shape),
              "tokens": tokens if tokens is not None else ""}
    return [identity, json.dumps(header).encode("utf-8"), array.tobytes(), request_id]


def client_visible_message(status, message):
    """The error text placed in `dtype`: numpy must not parse it (no commas), so it is shown."""
    return ("bert-serving error %d: %s" % (status, message)).replace(",", ";")


def error_reply(identity, request_id, status, message):
    """Frames of an error reply, shaped like an encodings reply (see the module docstring)."""
    header = {"dtype": client_visible_message(status, message), "shape": [0], "tokens": "",
              "status": status, "error": message}
    return [identity, json.dumps(header).encode("utf-8"), b"", request_id]


def json_reply(identity, request_id, value):
    """Frames of a config or status reply: [identity, JSON object, request id]."""
    return [identity, json.dumps(value, default=str).encode("utf-8"), request_id]


# ------------------------------------------------------------------------------------------------
# Arrays between the frontend and the workers.
# ------------------------------------------------------------------------------------------------


def pack_arrays(arrays):
    """dict name -> np.ndarray -> [JSON header, raw bytes per array] (names in sorted order)."""
    names = sorted(arrays)
    contiguous = [np.ascontiguousarray(arrays[name]) for name in names]
    header = [{"name": name, "dtype": str(a.dtype), "shape": list(a.shape)}
              for name, a in zip(names, contiguous)]
    return [json.dumps(header).encode("utf-8")] + [a.tobytes() for a in contiguous]


def unpack_arrays(frames):
    """Inverse of `pack_arrays`: [header, raw...] -> dict name -> np.ndarray (read-only views).

    Raises:
      ValueError: the frames do not match their header.
    """
    header = json.loads(frames[0].decode("utf-8"))
    if len(header) != len(frames) - 1:
        raise ValueError("array header names %d arrays but %d frames follow"
                         % (len(header), len(frames) - 1))
    arrays = {}
    for spec, raw in zip(header, frames[1:]):
        arrays[spec["name"]] = np.frombuffer(raw, dtype=spec["dtype"]).reshape(spec["shape"])
    return arrays
