"""Tests for tasks/crf.py: the forward algorithm and Viterbi against brute-force enumeration.

The oracle enumerates every tag sequence of a tiny case (L labels, up to T steps: L**T paths) and
scores each one directly from the definition of a linear-chain CRF.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tasks import crf

tf1 = tf.compat.v1


def path_score(potentials, tags, scores):
    """Score of one tag sequence straight from the definition."""
    if not tags:
        return 0.0
    total = scores.start[tags[0]] + scores.end[tags[-1]]
    total += sum(potentials[t, tag] for t, tag in enumerate(tags))
    total += sum(scores.transitions[a, b] for a, b in zip(tags, tags[1:]))
    return float(total)


def brute_force(potentials, length, scores):
    """(log partition, best path, best score) over all L**length sequences."""
    num_labels = potentials.shape[1]
    if length == 0:
        return 0.0, [], 0.0
    all_scores = {tags: path_score(potentials, list(tags), scores)
                  for tags in itertools.product(range(num_labels), repeat=length)}
    values = np.array(list(all_scores.values()))
    log_z = float(values.max() + np.log(np.exp(values - values.max()).sum()))
    best = max(all_scores, key=all_scores.get)
    return log_z, list(best), all_scores[best]


def random_case(seed, batch=4, steps=5, labels=3, lengths=(5, 3, 1, 0)):
    rng = np.random.RandomState(seed)
    potentials = rng.normal(size=[batch, steps, labels]).astype(np.float32) * 2
    scores = crf.TransitionScores(rng.normal(size=[labels, labels]).astype(np.float32),
                                  rng.normal(size=[labels]).astype(np.float32),
                                  rng.normal(size=[labels]).astype(np.float32))
    tags = rng.randint(0, labels, size=[batch, steps]).astype(np.int32)
    return potentials, tags, np.array(lengths, np.int32), scores


def run_graph(potentials, tags, lengths, scores):
    """Evaluates log_partition, log_likelihood, sequence_score and viterbi_decode in one graph."""
    with tf.Graph().as_default():
        tensors = crf.constant_transition_scores(scores)
        p = tf.constant(potentials)
        t = tf.constant(tags)
        n = tf.constant(lengths)
        ops = {
            "log_z": crf.log_partition(p, n, tensors),
            "ll": crf.log_likelihood(p, t, n, tensors),
            "score": crf.sequence_score(p, t, n, tensors),
            "viterbi": crf.viterbi_decode(p, n, tensors),
        }
        with tf1.Session() as sess:
            return sess.run(ops)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_algorithm_and_viterbi_match_brute_force(seed):
    potentials, tags, lengths, scores = random_case(seed)
    out = run_graph(potentials, tags, lengths, scores)
    decoded, best_scores = out["viterbi"]
    for b, length in enumerate(lengths):
        log_z, best, best_score = brute_force(potentials[b], length, scores)
        gold = path_score(potentials[b], list(tags[b, :length]), scores)
        np.testing.assert_allclose(out["log_z"][b], log_z, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out["score"][b], gold, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out["ll"][b], gold - log_z, rtol=1e-5, atol=1e-4)
        assert list(decoded[b, :length]) == best
        assert list(decoded[b, length:]) == [0] * (len(decoded[b]) - length)
        np.testing.assert_allclose(best_scores[b], best_score, rtol=1e-5, atol=1e-4)
        numpy_tags, numpy_score = crf.viterbi_decode_numpy(potentials[b, :length], scores)
        assert numpy_tags == best
        np.testing.assert_allclose(numpy_score, best_score, rtol=1e-5, atol=1e-4)


def test_probabilities_of_all_paths_sum_to_one():
    potentials, _, _, scores = random_case(7, batch=1, steps=4, labels=3, lengths=(4,))
    paths = np.array(list(itertools.product(range(3), repeat=4)), np.int32)
    out = run_graph(np.repeat(potentials, len(paths), axis=0), paths,
                    np.full([len(paths)], 4, np.int32), scores)
    np.testing.assert_allclose(np.exp(out["ll"]).sum(), 1.0, rtol=1e-4)


def test_constraints_are_never_broken_and_match_constrained_brute_force():
    rng = np.random.RandomState(3)
    labels = 3
    # Label 2 may only follow label 1 or itself, may not start, and the sequence may not end on 1.
    allowed = np.ones([labels, labels], bool)
    allowed[0, 2] = False
    constraints = crf.TransitionScores(np.where(allowed, 0.0, crf.DISALLOWED).astype(np.float32),
                                       np.array([0, 0, crf.DISALLOWED], np.float32),
                                       np.array([0, crf.DISALLOWED, 0], np.float32))
    potentials = rng.normal(size=[6, 4, labels]).astype(np.float32)
    potentials[:, :, 2] += 3.0  # The unconstrained best path would start with label 2.
    base = crf.TransitionScores(rng.normal(size=[labels, labels]).astype(np.float32),
                                np.zeros(labels, np.float32), np.zeros(labels, np.float32))
    lengths = np.array([4, 4, 3, 2, 1, 4], np.int32)
    with tf.Graph().as_default():
        scores = crf.add_constraints(crf.constant_transition_scores(base), constraints)
        decoded, _ = crf.viterbi_decode(tf.constant(potentials), tf.constant(lengths), scores)
        with tf1.Session() as sess:
            decoded, numpy_scores = sess.run([decoded, scores])
    for b, length in enumerate(lengths):
        path = list(decoded[b, :length])
        assert path[0] != 2 and path[-1] != 1
        assert all(allowed[a, c] for a, c in zip(path, path[1:]))
        _, best, _ = brute_force(potentials[b], length, crf.TransitionScores(*numpy_scores))
        assert path == best


def test_single_step_sequences():
    potentials, tags, _, scores = random_case(4, batch=2, steps=1, labels=4, lengths=(1, 0))
    out = run_graph(potentials, tags, np.array([1, 0], np.int32), scores)
    log_z, best, _ = brute_force(potentials[0], 1, scores)
    np.testing.assert_allclose(out["log_z"][0], log_z, rtol=1e-5)
    assert list(out["viterbi"][0][0]) == best and out["viterbi"][0][1, 0] == 0
    assert out["log_z"][1] == 0 and out["ll"][1] == 0


def test_variables_have_stable_names_and_training_learns_transitions():
    """Gradient descent on the CRF alone learns a strict alternation that emissions cannot tell."""
    labels = 2
    with tf.Graph().as_default():
        scores = crf.create_transition_scores(labels)
        names = sorted(v.op.name for v in tf1.trainable_variables())
        # Uninformative emissions: only the transitions can explain 0 1 0 1 ... / 1 0 1 0 ...
        potentials = tf.zeros([2, 6, labels])
        tags = tf.constant([[0, 1, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0]], tf.int32)
        loss = -tf.reduce_mean(crf.log_likelihood(potentials, tags, tf.constant([6, 6]), scores))
        train = tf1.train.GradientDescentOptimizer(0.5).minimize(loss)
        decoded, _ = crf.viterbi_decode(
            tf.constant([[[2.0, 0.0]] + [[0.0, 0.0]] * 5]), tf.constant([6]), scores)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            first = sess.run(loss)
            for _ in range(200):
                sess.run(train)
            last, path = sess.run([loss, decoded])
    assert names == ["crf/end_transitions", "crf/start_transitions", "crf/transitions"]
    assert first == pytest.approx(6 * np.log(2), rel=1e-5)  # Uniform over 2**6 paths.
    # What remains is the coin flip of the first tag (each sequence starts with another label).
    assert last == pytest.approx(np.log(2), abs=0.05)
    assert list(path[0]) == [0, 1, 0, 1, 0, 1]
