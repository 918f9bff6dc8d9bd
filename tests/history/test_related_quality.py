"""How well `related` finds the incidents of one story, on a generated month with known causes
(tests/support/related_history.py): precision ≥ 0.90 and recall ≥ 0.90 over the links found
from every third incident. (The whole month, measured by bench/bench_related.py: precision
0.96, recall 0.97; the misses are in its first week, before the history says which alertnames
open together.)"""

from __future__ import annotations

from datetime import timedelta

import pytest

from incidentctl.history.related import RelatedRules, related_incidents
from tests.support.related_history import generate, insert, precision_recall, true_pairs

RULES = RelatedRules(timedelta(minutes=5), ("cluster", "namespace", "service"), timedelta(days=30))
MIN_PRECISION = 0.90
MIN_RECALL = 0.90


@pytest.mark.slow  # a generated month, thousands of incidents: a quality measure, not a check of one change
def test_precision_and_recall_on_a_generated_history(engine):
    history = generate(days=30, seed=7)
    ids = insert(engine, history)
    anchors = set(ids[::3])
    found = {frozenset((iid, link.incident.id)) for iid in sorted(anchors)
             for link in related_incidents(engine, iid, RULES).links}
    truth = {pair for pair in true_pairs(ids, history) if pair & anchors}  # what the anchors should find
    precision, recall = precision_recall(found, truth)
    assert len(truth) > 500 and len(found) > 500
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL, (precision, recall)
