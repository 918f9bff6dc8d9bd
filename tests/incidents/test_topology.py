"""Places: which topology values two incidents share, and when they are in the same place."""

from __future__ import annotations

import pytest

from incidentctl.incidents.topology import place_of, same_place, scope_text, shared

LABELS = ("cluster", "namespace", "service")
P = lambda *values: tuple((k, v) for k, v in zip(LABELS, values, strict=False) if v)  # noqa: E731


# (a, b, what they share, same place?)
CASES = [
    (P("prod", "pay", "api"), P("prod", "pay", "api"), P("prod", "pay", "api"), True),  # same service
    (P("prod", "pay", "api"), P("prod", "pay", "web"), P("prod", "pay"), True),  # same namespace
    (P("prod", "pay", "api"), P("prod", "shop", "web"), P("prod"), False),  # only the cluster
    (P("prod", "pay", "api"), P("prod", "shop", "api"), P("prod"), False),  # `api` of another namespace
    (P("prod"), P("prod", "pay", "api"), P("prod"), True),  # a cluster-wide incident covers it
    (P("prod", "pay", "api"), P("prod"), P("prod"), True),  # either way round
    (P("prod", "db"), P("prod", "db", "pg"), P("prod", "db"), True),  # namespace-wide covers a service
    (P("prod"), P("prod"), P("prod"), True),
    (P("prod"), P("stage"), (), False),
    (P("prod", "pay", "api"), P("stage", "pay", "api"), (), False),  # the same names in another cluster
    ((), P("prod", "pay"), (), False),  # an incident without topology is nowhere
    ((), (), (), False),
    ((("cluster", "prod"), ("service", "api")), P("prod", "pay", "api"), P("prod"), False),  # no namespace: not inside
]


@pytest.mark.parametrize("a,b,common,same", CASES)
def test_shared_and_same_place(a, b, common, same):
    assert shared(a, b) == common
    assert same_place(a, b) is same
    assert same_place(b, a) is same  # symmetric


# (incident, labels, its place)
PLACES = [
    ({"cluster": "prod", "namespace": "pay", "service": "api"}, LABELS, P("prod", "pay", "api")),
    ({"cluster": "prod", "namespace": "", "service": None}, LABELS, P("prod")),  # empty values left out
    ({"cluster": "prod", "common_labels": {"region": "eu", "cluster": "x"}}, ("region", "cluster"),
     (("region", "eu"), ("cluster", "prod"))),  # other labels from the common labels; a column wins
    ({"cluster": None, "labels": {"cluster": "edge"}}, ("cluster",), (("cluster", "edge"),)),  # the digest's name
    ({"cluster": "prod"}, (), ()),
]


@pytest.mark.parametrize("incident,labels,place", PLACES)
def test_place_of(incident, labels, place):
    assert place_of(incident, labels) == place


def test_scope_text():
    assert scope_text(P("prod", "pay")) == "prod/pay"
    assert scope_text(()) == "(no topology labels)"
