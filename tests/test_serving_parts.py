"""Unit tests for the serving parts without sockets: protocol, features, batching, pooling, config.

No TensorFlow, no processes: each part against small hand-made oracles.
"""

import json
import os
import random

import numpy as np
import pytest

from serving import batching, features, pooling, protocol
from serving import config as serving_config

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on",
         "mat", "hello", "world", "runs", "fast", "##s", ".", ",", "|||"]


@pytest.fixture(scope="module")
def tiny_vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return str(path)


# ------------------------------------------------------------------------------------------------
# protocol
# ------------------------------------------------------------------------------------------------


def test_client_frames_are_parsed_or_refused_with_whom_to_answer():
    message = protocol.parse_client_frames([b"id", b'["a"]', b"7", b"1"])
    assert (message.identity, message.request_id, message.message_length) == (b"id", b"7", 1)
    assert not message.is_command
    assert protocol.parse_client_frames([b"id", b"SHOW_CONFIG", b"1", b"0"]).is_command
    with pytest.raises(protocol.MalformedMessage) as e:
        protocol.parse_client_frames([b"id", b'["a"]', b"9"])
    assert (e.value.identity, e.value.request_id, e.value.status) == (b"id", b"9", 400)
    for frames in ([b"only one"], [b"id", b"payload"], [b"", b"x", b"1", b"x"]):
        with pytest.raises(protocol.MalformedMessage) as e:
            protocol.parse_client_frames(frames)
        assert e.value.identity is None


@pytest.mark.parametrize("texts,status,text", [
    ("a", 400, "JSON list"), ([], 400, "empty list"), (["a", ""], 400, "texts[1] is empty"),
    (["a", 3], 400, "texts[1] is int"), ([["a"], "b"], 400, "texts[1] is str"),
    ([["a", ""]], 400, "texts[0][1]"), ([[]], 400, "empty token list"),
    (["a"] * 5, 413, "holds 5 texts"),
])
def test_bad_texts_are_named(texts, status, text):
    with pytest.raises(protocol.RequestError) as e:
        protocol.validate_texts(texts, max_texts=4)
    assert e.value.status == status and text in e.value.message


def test_texts_are_raw_or_pre_tokenized():
    assert protocol.validate_texts(["a", "b ||| c"]) is False
    assert protocol.validate_texts([["a"], ["b", "|||", "c"]]) is True
    with pytest.raises(protocol.RequestError, match="not valid UTF-8"):
        protocol.decode_payload(b'["caf\xe9"]')
    with pytest.raises(protocol.RequestError, match="not valid JSON"):
        protocol.decode_payload(b"[")


def test_error_reply_surfaces_in_the_unmodified_client_as_an_exception():
    frames = protocol.error_reply(b"id", b"3", 503, "server busy: 10 waiting, retry later")
    header = json.loads(frames[1])
    assert frames[0] == b"id" and frames[-1] == b"3"
    assert header["status"] == 503 and header["error"] == "server busy: 10 waiting, retry later"
    # What bert-serving-client 1.10 does with a reply: np.frombuffer(raw, dtype=header["dtype"]).
    with pytest.raises(TypeError, match="server busy: 10 waiting; retry later"):
        np.frombuffer(frames[2], dtype=header["dtype"])


def test_ndarray_reply_and_worker_arrays_round_trip():
    array = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    frames = protocol.ndarray_reply(b"id", b"5", array, [["[CLS]", "a", "[SEP]"]] * 2)
    header = json.loads(frames[1])
    assert header["tokens"][0] == ["[CLS]", "a", "[SEP]"] and frames[3] == b"5"
    np.testing.assert_array_equal(
        np.frombuffer(frames[2], dtype=header["dtype"]).reshape(header["shape"]), array)
    assert json.loads(protocol.ndarray_reply(b"i", b"1", array)[1])["tokens"] == ""
    arrays = {"b": np.arange(6, dtype=np.int32).reshape(2, 3), "a": np.ones([2], np.float32)}
    back = protocol.unpack_arrays(protocol.pack_arrays(arrays))
    assert sorted(back) == ["a", "b"]
    for name in arrays:
        np.testing.assert_array_equal(back[name], arrays[name])
        assert back[name].dtype == arrays[name].dtype
    with pytest.raises(ValueError):
        protocol.unpack_arrays(protocol.pack_arrays(arrays)[:2])


# ------------------------------------------------------------------------------------------------
# features
# ------------------------------------------------------------------------------------------------


def test_pairs_split_like_the_reference_regex():
    assert features.split_pair("a ||| b") == ("a", "b")
    assert features.split_pair("a ||| b ||| c") == ("a ||| b", "c")  # greedy: the last one
    assert features.split_pair("a|||b") == ("a|||b", None)
    assert features.split_pair("a\nb ||| c") == ("a\nb ||| c", None)  # `.` stops at line ends


def test_texts_tokens_masks_and_truncation(tiny_vocab):
    featurizer = features.Featurizer(tiny_vocab, True, 8)
    single, pair, long = featurizer.featurize(["Hello World", "the cat ||| a dog",
                                               "the cat sat on the mat . the dog runs"], False)
    assert single.tokens == ["[CLS]", "hello", "world", "[SEP]"]
    assert single.input_ids == [2, 12, 13, 3] and single.input_mask == [1, 1, 1, 1]
    assert pair.tokens == ["[CLS]", "the", "cat", "[SEP]", "a", "dog", "[SEP]"]
    assert pair.input_type_ids == [0, 0, 0, 0, 1, 1, 1]
    assert long.tokens == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    tokenized = featurizer.featurize([["Hello", "cat", "|||", "dogs"]], True)[0]
    # Pre-tokenized: not lower-cased, not split; unknown tokens are [UNK].
    assert tokenized.tokens == ["[CLS]", "[UNK]", "cat", "[SEP]", "[UNK]", "[SEP]"]
    masked = features.Featurizer(tiny_vocab, True, 8, mask_cls_sep=True)
    assert masked.featurize(["a ||| b"], False)[0].input_mask == [0, 1, 0, 1, 0]
    arrays = features.pad_batch([single, pair], 9)
    assert arrays["input_ids"].shape == (2, 9) and arrays["input_ids"].dtype == np.int32
    assert arrays["lengths"].tolist() == [4, 7]
    assert arrays["input_mask"][0].tolist()[3:6] == [1, 0, 0]


# ------------------------------------------------------------------------------------------------
# batching
# ------------------------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, name):
        self.name = name
        self.done = False


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_every_sentence_is_cut_exactly_once_and_the_oldest_is_always_in():
    rng = random.Random(7)
    queue = batching.BatchQueue(max_batch_size=8, priority_batch_size=4, window_factor=4)
    added = {}
    for r in range(40):
        request = FakeRequest(r)
        items = queue.add(request, [Sized(rng.randint(3, 60)) for _ in range(rng.randint(1, 20))])
        added.update((id(item), item) for item in items)
    seen = []
    while len(queue):
        oldest = queue._priority[0].items[0] if queue._priority else queue._normal[0].items[0]
        batch = queue.cut()
        assert 1 <= len(batch) <= 8 and any(item is oldest for item in batch)
        seen.extend(batch)
    assert sorted(map(id, seen)) == sorted(added) and queue.cut() == []


def test_length_grouping_pads_less_than_arrival_order():
    rng = random.Random(3)
    lengths = [rng.choice([5, 6, 7, 40, 45, 50]) for _ in range(400)]
    grouped = batching.BatchQueue(max_batch_size=16, priority_batch_size=0, window_factor=4)
    for start in range(0, 400, 8):
        grouped.add(FakeRequest(start), [Sized(n) for n in lengths[start:start + 8]])
    padded = 0
    while len(grouped):
        batch = grouped.cut()
        padded += len(batch) * max(item.length for item in batch)
    fifo = sum(16 * max(lengths[i:i + 16]) for i in range(0, 400, 16))
    assert padded < 0.75 * fifo, (padded, fifo)


def test_small_requests_first_and_retried_items_alone():
    queue = batching.BatchQueue(max_batch_size=4, priority_batch_size=2)
    big, small, other = FakeRequest("big"), FakeRequest("small"), FakeRequest("other")
    queue.add(big, [Sized(5)] * 6)
    small_items = queue.add(small, [Sized(5)] * 2)
    assert all(item.request is small for item in queue.cut()[:2])
    batch = queue.cut()
    # Their worker died: each request's items come back first, cut on their own.
    other_items = queue.add(other, [Sized(5)])
    queue.requeue(batch + small_items[:1])
    first = queue.cut()
    assert {item.request.name for item in first} == {"big"} and len(first) == 4
    assert [item.request.name for item in queue.cut()] == ["small"]
    queue.discard(big)
    assert queue.cut() == other_items and len(queue) == 0
    small.done = True
    queue.requeue(small_items)
    assert len(queue) == 0  # a finished request's items are not put back


def test_a_cut_smaller_than_a_batch_splits_a_big_request():
    queue = batching.BatchQueue(max_batch_size=256)
    queue.add(FakeRequest("r"), [Sized(10)] * 100)
    assert len(queue.cut(50)) == 50 and len(queue.cut(400)) == 50


def test_the_cost_model_sizes_batches_for_the_device():
    def queue_of(lengths):
        queue = batching.BatchQueue(max_batch_size=8, priority_batch_size=0)
        queue.add(FakeRequest("r"), [Sized(n) for n in lengths])
        return queue

    lengths = [20, 5, 6, 7, 40, 41, 42, 19]  # the first is the anchor
    # A CPU-like worker (overhead of one token): the anchor and every shorter sentence, nothing
    # that would raise the padded length to 40.
    batch = queue_of(lengths).cut(overhead_tokens=1.0)
    assert sorted(item.length for item in batch) == [5, 6, 7, 19, 20]
    # A GPU-like worker (overhead of 100,000 tokens): the whole batch.
    assert len(queue_of(lengths).cut(overhead_tokens=1e5)) == 8
    # Inputs padded to a fixed length anyway: size is free, take all.
    assert len(queue_of(lengths).cut(overhead_tokens=1.0, fixed_length=64)) == 8
    assert len(queue_of(lengths).cut(3, overhead_tokens=1e5)) == 3


def test_the_cost_model_fits_overhead_and_per_token_time():
    model = batching.CostModel(default_overhead_tokens=512.0, min_batches=4)
    for tokens in (100, 200):
        model.add(tokens, 0.010 + 0.001 * tokens)
    assert model.overhead_tokens == 512.0  # too few batches timed
    for tokens in (400, 800, 50):
        model.add(tokens, 0.010 + 0.001 * tokens)
    assert model.overhead_tokens == pytest.approx(10.0)
    assert model.describe()["ms_per_1k_tokens"] == pytest.approx(1000.0)
    flat = batching.CostModel(min_batches=2)
    for tokens in (100, 100, 100):
        flat.add(tokens, 0.5)
    assert flat.overhead_tokens == flat.default_overhead_tokens  # no spread: nothing to fit


# ------------------------------------------------------------------------------------------------
# pooling
# ------------------------------------------------------------------------------------------------


def _layers():
    rng = np.random.RandomState(0)
    return [rng.randn(2, 5, 3).astype(np.float32) for _ in range(2)]


def test_pooling_strategies_against_hand_computed_values():
    l1, l2 = _layers()
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0]])
    lengths = np.array([3, 5])
    mean = pooling.pool("REDUCE_MEAN", [l1], mask, lengths)
    np.testing.assert_allclose(mean[0], l1[0, :3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(mean[1], l1[1, 1:4].mean(0), rtol=1e-6)
    maximum = pooling.pool("REDUCE_MAX", [l1], mask, lengths)
    np.testing.assert_allclose(maximum[1], l1[1, 1:4].max(0))
    # Several layers are concatenated before pooling: [mean(l1) mean(l2) max(l1) max(l2)].
    mean_max = pooling.pool("REDUCE_MEAN_MAX", [l1, l2], mask, lengths)
    assert mean_max.shape == (2, 12)
    np.testing.assert_allclose(mean_max[0, 3:6], l2[0, :3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(mean_max[0, 6:9], l1[0, :3].max(0))
    np.testing.assert_array_equal(pooling.pool("CLS_TOKEN", [l1], mask, lengths), l1[:, 0])
    last = pooling.pool("SEP_TOKEN", [l1], mask, lengths)
    np.testing.assert_array_equal(last, np.stack([l1[0, 2], l1[1, 4]]))
    none = pooling.pool("NONE", [l1, l2], mask, lengths)
    assert none.shape == (2, 5, 6) and not none[0, 3:].any() and not none[1, 0].any()
    np.testing.assert_array_equal(none[1, 2], np.concatenate([l1[1, 2], l2[1, 2]]))
    kernel, bias = np.eye(3, dtype=np.float32) * 2, np.ones(3, np.float32)
    np.testing.assert_allclose(pooling.pool("CLS_POOLED", [l2], mask, lengths, (kernel, bias)),
                               np.tanh(2 * l2[:, 0] + 1), rtol=1e-6)


def test_a_sentence_with_nothing_unmasked_pools_to_zeros():
    l1, _ = _layers()
    mask = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    for strategy in ("REDUCE_MEAN", "REDUCE_MAX", "REDUCE_MEAN_MAX"):
        assert not pooling.pool(strategy, [l1], mask, np.array([2, 5]))[0].any()


def test_strategy_names_dims_and_layers():
    assert pooling.canonical("cls_token") == "FIRST_TOKEN"
    assert pooling.canonical("SEP_TOKEN") == "LAST_TOKEN"
    with pytest.raises(ValueError, match="REDUCE_MEAN"):
        pooling.canonical("average")
    assert pooling.output_dim("REDUCE_MEAN_MAX", 32, 2) == 128
    assert pooling.output_dim("CLS_POOLED", 32, 3) == 32
    assert pooling.fetched_layers("CLS_POOLED", [-2], 4) == [3]
    assert pooling.fetched_layers("NONE", [-1, -2], 4) == [-1, -2]


# ------------------------------------------------------------------------------------------------
# config
# ------------------------------------------------------------------------------------------------


def test_config_values_are_checked_with_the_flag_to_fix(tmp_path, tiny_vocab):
    for values, text in [(dict(max_seq_len=2), "-max_seq_len=2"),
                         (dict(num_worker=0), "-num_worker"),
                         (dict(port=5555, port_out=5555), "must differ"),
                         (dict(pooling_strategy="avg"), "unknown pooling"),
                         (dict(device_map=[-1]), "-device_map")]:
        with pytest.raises(ValueError, match=text):
            serving_config.ServeConfig(**values).validate()
    model_dir = tmp_path / "model"
    model_dir.mkdir()

    def resolve(**values):
        values.setdefault("max_seq_len", 16)
        return serving_config.resolve_model(serving_config.ServeConfig(model_dir=str(model_dir),
                                                                       **values))

    with pytest.raises(ValueError, match="bert_config.json does not exist"):
        resolve()
    (model_dir / "bert_config.json").write_text(json.dumps(
        {"hidden_size": 8, "num_hidden_layers": 2, "max_position_embeddings": 16}))
    (model_dir / "vocab.txt").write_text(open(tiny_vocab).read())
    with pytest.raises(ValueError, match="no checkpoint bert_model.ckpt.index"):
        resolve()
    # A run_classifier.py output_dir: its latest checkpoint, from the `checkpoint` file.
    (model_dir / "model.ckpt-7.index").write_text("")
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
    spec = resolve()
    assert spec.checkpoint == os.path.join(str(model_dir), "model.ckpt-7")
    assert (spec.kind, spec.max_length, spec.hidden_size) == ("encoder", 16, 8)
    assert resolve(max_seq_len=None).max_length == 16  # NONE: up to the position table
    for values, text in [(dict(max_seq_len=17), "max_position_embeddings=16"),
                         (dict(pooling_layer=[2]), "layer 2 does not exist"),
                         (dict(task="classifier"), "labels.txt")]:
        with pytest.raises(ValueError, match=text):
            resolve(**values)
    (model_dir / "labels.txt").write_text("neg\npos\n")
    assert resolve(task="classifier").labels == ["neg", "pos"]
