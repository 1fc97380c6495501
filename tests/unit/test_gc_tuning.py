"""The operator's garbage-collector setting (HERALD_GC_THRESHOLD): Python's own thresholds unless
the setting names how many allocations go between young collections."""

from __future__ import annotations

import gc

import pytest

from herald.__main__ import tune_gc
from herald.config import OperatorConfig


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_by_default_pythons_own_thresholds_are_kept(monkeypatch, thresholds):
    monkeypatch.delenv("HERALD_GC_THRESHOLD", raising=False)
    tune_gc(OperatorConfig().gc_threshold)
    assert gc.get_threshold() == thresholds


def test_the_setting_spaces_the_collections(monkeypatch, thresholds):
    monkeypatch.setenv("HERALD_GC_THRESHOLD", "50000")
    tune_gc(OperatorConfig().gc_threshold)
    assert gc.get_threshold() == (50_000, 20, 100)


def test_a_negative_setting_is_refused(monkeypatch):
    monkeypatch.setenv("HERALD_GC_THRESHOLD", "-1")
    with pytest.raises(ValueError, match="gc_threshold"):
        OperatorConfig()
