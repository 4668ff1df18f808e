"""The frontend's queue of tokenized sentences and the batch cutter.

Sentences from all clients wait here, grouped by request, until a worker can take a batch. A batch
is cut from a window over the oldest requests (`window_factor` x max_batch_size sentences):

1. The anchor is the oldest waiting sentence (small requests, up to `priority_batch_size` texts,
   count as older than big ones, as in bert-as-service). Every batch holds the anchor, so the
   oldest request always makes progress and no request waits forever behind newer ones.
2. Around it, the batch takes sentences of similar length: a batch costs about
   `overhead + per_token x sentences x longest` seconds (`CostModel`, fitted per worker from the
   times it reports), so the cut takes the number of sentences that gives the most sentences per
   second: on a GPU (large overhead) full batches, on a CPU (overhead of a few tokens, no gain
   from size) small batches of near-equal length, since every padding token costs as much as a
   real one. Without a cost model, the run of `size` sentences of least length spread.

Retried sentences (their worker died) go back to the front. The queue only counts and orders;
bounds (`max_queue_size`) are enforced by the server before `add`.
"""

import collections


class Item:
    """One sentence of one request, waiting or in a batch."""

    __slots__ = ("request", "index", "features", "attempts")

    def __init__(self, request, index, features):
        self.request = request
        self.index = index
        self.features = features
        self.attempts = 0

    @property
    def length(self):
        return len(self.features)


class _Group:
    """The waiting items of one request (or of one retried batch)."""

    __slots__ = ("request", "items", "retried")

    def __init__(self, request, items, retried=False):
        self.request = request
        self.items = items
        self.retried = retried


class BatchQueue:
    """Waiting sentences, cut into length-grouped batches.

    Args:
      max_batch_size: the most sentences in one batch.
      priority_batch_size: requests with at most this many texts go before bigger ones.
      window_factor: how many batches' worth of the oldest sentences a cut looks at.
    """

    def __init__(self, max_batch_size, priority_batch_size=16, window_factor=4):
        self.max_batch_size = max_batch_size
        self.priority_batch_size = priority_batch_size
        self.window = max(1, window_factor) * max_batch_size
        self._priority = collections.deque()
        self._normal = collections.deque()
        self._size = 0

    def __len__(self):
        """Number of waiting sentences."""
        return self._size

    def add(self, request, features):
        """Queues the sentences of a request; returns the list of their Items."""
        items = [Item(request, i, f) for i, f in enumerate(features)]
        target = self._priority if len(items) <= self.priority_batch_size else self._normal
        target.append(_Group(request, items))
        self._size += len(items)
        return items

    def requeue(self, items):
        """Puts items back at the very front (their worker died before answering).

        Each request's items form their own group, and a cut that starts at a retried group takes
        nothing else: a sentence that kills workers then only takes its own request down.
        """
        by_request = collections.OrderedDict()
        for item in items:
            if not item.request.done:
                by_request.setdefault(id(item.request), []).append(item)
        for group_items in reversed(list(by_request.values())):
            self._priority.appendleft(_Group(group_items[0].request, group_items, retried=True))
            self._size += len(group_items)

    def discard(self, request):
        """Drops the waiting items of a request (it failed or was answered otherwise)."""
        for queue in (self._priority, self._normal):
            kept = collections.deque()
            for group in queue:
                if group.request is request:
                    self._size -= len(group.items)
                else:
                    kept.append(group)
            queue.clear()
            queue.extend(kept)

    def cut(self, size=None, overhead_tokens=None, fixed_length=None):
        """Removes and returns the next batch (a list of Items, possibly empty).

        Args:
          size: the most sentences to take (default and upper bound: max_batch_size).
          overhead_tokens: (optional) the worker's fixed cost per batch in token-equivalents
            (`CostModel.overhead_tokens`); the batch size then maximizes sentences per second.
          fixed_length: (optional) every batch is padded to this length (SavedModels).
        """
        size = min(size or self.max_batch_size, self.max_batch_size)
        self._drop_empty()
        first = self._priority[0] if self._priority else None
        if first is not None and first.retried:
            chosen, first.items = first.items[:size], first.items[size:]
            self._size -= len(chosen)
            self._drop_empty()
            return chosen
        window, groups = self._window()
        if not window:
            return []
        if overhead_tokens is not None:
            chosen = _fastest_run(window, size, overhead_tokens, fixed_length)
        elif len(window) <= size:
            chosen = window
        else:
            chosen = _tightest_run(window, size)
        taken = set(map(id, chosen))
        for group in groups:
            group.items = [item for item in group.items if id(item) not in taken]
        self._size -= len(chosen)
        self._drop_empty()
        return chosen

    def _window(self):
        """The oldest waiting items, anchor first, and the groups they came from."""
        window, groups = [], []
        for queue in (self._priority, self._normal):
            for group in queue:
                if group.retried:
                    continue  # cut on their own (see requeue)
                if len(window) >= self.window:
                    return window, groups
                groups.append(group)
                window.extend(group.items[:self.window - len(window)])
        return window, groups

    def _drop_empty(self):
        for queue in (self._priority, self._normal):
            while queue and not queue[0].items:
                queue.popleft()
            if any(not group.items for group in queue):
                kept = [group for group in queue if group.items]
                queue.clear()
                queue.extend(kept)


def _tightest_run(window, size):
    """The `size` items contiguous in length order, holding window[0], of least length spread."""
    anchor = window[0]
    ordered = sorted(window, key=lambda item: item.length)
    position = next(i for i, item in enumerate(ordered) if item is anchor)
    lengths = [item.length for item in ordered]
    first = max(0, position - size + 1)
    last = min(position, len(ordered) - size)
    best = min(range(first, last + 1), key=lambda s: (lengths[s + size - 1] - lengths[s], -s))
    return ordered[best:best + size]


def _fastest_run(window, size, overhead_tokens, fixed_length=None):
    """The batch holding window[0] that maximizes n / (overhead + n x longest).

    For n sentences the least padded batch holding the anchor is the anchor and the n - 1
    sentences just shorter than it (or, when there are fewer, the n shortest), so one pass
    over n finds the best size.
    """
    anchor = window[0]
    ordered = sorted(window, key=lambda item: item.length)
    position = next(i for i, item in enumerate(ordered) if item is anchor)
    best_n, best_rate = 1, -1.0
    for n in range(1, min(size, len(ordered)) + 1):
        longest = fixed_length or ordered[max(position, n - 1)].length
        rate = n / (overhead_tokens + n * longest)
        if rate >= best_rate:
            best_n, best_rate = n, rate
    start = max(0, position - best_n + 1)
    return ordered[start:start + best_n]


class CostModel:
    """A worker's batch time as `overhead + per_token x padded tokens`, fitted on its recent
    batches by least squares.

    `overhead_tokens` (overhead / per_token) is what the batch cutter needs: the number of
    padding tokens worth saving by running one more batch. Until `min_batches` batches of
    different sizes were timed, it is `default_overhead_tokens`.
    """

    def __init__(self, default_overhead_tokens=512.0, history=128, min_batches=8):
        self.default_overhead_tokens = default_overhead_tokens
        self.min_batches = min_batches
        self._points = collections.deque(maxlen=history)
        self._fit = None

    def add(self, tokens, seconds):
        """Records one batch: `tokens` = sentences x padded length, `seconds` of model time."""
        self._points.append((float(tokens), float(seconds)))
        self._fit = None

    def _fitted(self):
        if self._fit is None:
            self._fit = (None, None)
            if len(self._points) >= self.min_batches:
                xs = [x for x, _ in self._points]
                ys = [y for _, y in self._points]
                mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
                var = sum((x - mean_x) ** 2 for x in xs)
                if var > 0:
                    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var
                    if slope > 0:
                        self._fit = (max(mean_y - slope * mean_x, 0.0), slope)
        return self._fit

    @property
    def overhead_tokens(self):
        overhead, per_token = self._fitted()
        if per_token is None:
            return self.default_overhead_tokens
        return min(max(overhead / per_token, 1.0), 1e6)

    def describe(self):
        overhead, per_token = self._fitted()
        if per_token is None:
            return {"batches_timed": len(self._points)}
        return {"batches_timed": len(self._points), "overhead_ms": round(1000 * overhead, 3),
                "ms_per_1k_tokens": round(1e6 * per_token, 3),
                "overhead_tokens": round(self.overhead_tokens, 1)}
