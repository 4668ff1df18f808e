"""Shared pytest fixtures: quiet TensorFlow, real artefacts from tests/artifacts.py, the repo root."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests import artifacts  # noqa: E402

REPO_ROOT = artifacts.REPO_ROOT


def _artifact(fn):
    try:
        return fn()
    except artifacts.ArtifactUnavailable as e:  # Only when PyPI itself cannot be reached.
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def english_vocab():
    return _artifact(artifacts.english_vocab)


@pytest.fixture(scope="session")
def chinese_vocab():
    return _artifact(artifacts.chinese_vocab)


@pytest.fixture(scope="session")
def minilm_dir():
    return _artifact(artifacts.minilm_dir)


@pytest.fixture(scope="session")
def gensim_test_data():
    return _artifact(artifacts.gensim_test_data)
