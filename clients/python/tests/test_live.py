"""The client against a live `duet serve` (scripts/python-client.sh starts one): DUET_URL, DUET_API_KEY,
and DUET_SLOW_KEY (a read key limited to 1 request per second). Skipped without DUET_URL, unless
DUET_LIVE_REQUIRED=1, which CI sets so these tests can never skip themselves into green."""
import dataclasses
import json
import os
import urllib.parse
import urllib.request

import pytest

import duet_client
from duet_client import (ArmExposure, Because, Client, DuetError, Event, Explanation, IngestReceipt, Item, Readiness,
                         Recommendations, SimilarItems)

URL = os.environ.get("DUET_URL")
if not URL and os.environ.get("DUET_LIVE_REQUIRED") == "1":
    raise RuntimeError("DUET_LIVE_REQUIRED=1 but DUET_URL is not set")
pytestmark = pytest.mark.skipif(not URL, reason="DUET_URL is not set: no live server to test against")

INDEX = "tracks/similar"


@pytest.fixture
def duet():
    return Client(URL, api_key=os.environ.get("DUET_API_KEY"))


def test_recommendations_are_typed_ranked_and_honour_n_and_exclude(duet):
    recs = duet.recommendations("u1", n=5, context="home")
    assert isinstance(recs, Recommendations) and recs.user == "u1" and recs.request_id and recs.bundle
    assert len(recs.items) == 5 and all(isinstance(item, Item) and isinstance(item.score, float) for item in recs.items)
    scores = [item.score for item in recs.items]
    assert scores == sorted(scores, reverse=True)
    first = recs.items[0].id
    again = duet.recommendations("u1", n=5, exclude=[first])
    assert first not in [item.id for item in again.items] and len(again.items) == 5


def test_explanations_name_a_history_item_and_the_index(duet):
    recs = duet.recommendations("u1", n=5, explain_index=INDEX)
    assert isinstance(recs.explanation, Explanation) and recs.explanation.index == INDEX
    becauses = [item.because for item in recs.items if item.because is not None]
    assert becauses and all(isinstance(b, Because) and b.id for b in becauses)


def test_similar_items_from_a_published_index_and_from_the_bundle(duet):
    item = duet.recommendations("u2", n=1).items[0].id
    similar = duet.similar_from_index(INDEX, item, n=5)
    assert isinstance(similar, SimilarItems) and similar.index == INDEX and similar.artefact and similar.generation >= 1
    assert len(similar.items) == 5 and item not in [i.id for i in similar.items]
    own = duet.similar(item, n=3)
    assert own.bundle and len(own.items) == 3


def test_an_unknown_index_is_a_404_that_names_it(duet):
    with pytest.raises(DuetError) as caught:
        duet.similar_from_index("tracks/nothing-here", "t1")
    assert caught.value.status == 404 and "tracks/nothing-here" in caught.value.message


def test_events_are_stored_in_batches_and_a_bad_one_is_refused_whole(duet):
    events = [Event(user=f"client-u{i % 50}", item=f"t{i % 200}", timestamp=1_764_590_400_000 + i) for i in range(2500)]
    receipts = duet.send_events(events, batch_size=1000)
    assert [r.accepted for r in receipts] == [1000, 1000, 500] and all(isinstance(r, IngestReceipt) for r in receipts)
    sequences = [r.last_sequence for r in receipts]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    with pytest.raises(DuetError) as caught:
        duet.send_events([Event(user="u1", item="t1", timestamp=1_764_590_400_000), Event(user="", item="t1", timestamp=1)])
    assert caught.value.status == 400 and "user" in caught.value.message


def test_a_rate_limited_key_waits_as_told_and_gets_its_answers():
    slow = Client(URL, api_key=os.environ["DUET_SLOW_KEY"])
    for _ in range(3):
        assert len(slow.recommendations("u3", n=1).items) == 1
    assert slow.retries >= 1, "the key allows 1 request per second, so 3 in a row meet a 429 at least once"


def test_ready_reports_the_loaded_bundle(duet):
    ready = duet.ready()
    assert isinstance(ready, Readiness) and ready.ready and ready.bundle and ready.generation >= 1


def snake(name):
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def test_every_route_parameter_and_field_agrees_with_openapi(duet, monkeypatch):
    with urllib.request.urlopen(URL + "/openapi.json") as answer:
        spec = json.load(answer)
    schemas = spec["components"]["schemas"]

    # The requests the client really makes, with every option set, checked against the documented routes.
    sent = []
    real = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: sent.append(request) or real(request, timeout=timeout))
    item = duet.recommendations("u1", n=2, exclude=["t0"], context="c", explain=True, explain_index=INDEX).items[0].id
    duet.similar(item, n=2, filters=["genre!=x"], exclude=["t0"])
    duet.similar_from_index(INDEX, item, n=2, filters=["genre!=x"], exclude=["t0"])
    duet.send_events([Event(user="u1", item=item, timestamp=1_764_590_400_000, request_id="r")])
    duet.ready()
    templates = {("GET", "/v1/users/{user}/recommendations"), ("GET", "/v1/items/{item}/similar"),
                 ("GET", "/v1/similar/{index}/items/{item}"), ("POST", "/v1/events"), ("GET", "/readyz")}
    matched = set()
    for request in sent:
        parts = urllib.parse.urlsplit(request.full_url)
        segments = parts.path.split("/")
        for method, template in templates:
            pattern = template.split("/")
            if method == request.get_method() and len(pattern) == len(segments) and all(
                    p.startswith("{") or p == s for p, s in zip(pattern, segments)):
                matched.add((method, template))
                operation = spec["paths"][template][method.lower()]
                documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                used = {name for name, _ in urllib.parse.parse_qsl(parts.query)}
                assert used <= documented, f"{template} sends undocumented {used - documented}"
    assert matched == templates, f"requests matched no documented route: {templates - matched}"

    def fields(cls):
        return {f.name for f in dataclasses.fields(cls)}

    def required(cls):
        return {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}

    def agree(cls, schema, also=None):
        properties = {snake(k) for k in schema["properties"]} | {snake(k) for k in (also or {}).get("properties", {})}
        needed = {snake(k) for k in schema.get("required", [])}
        if also is not None:
            needed &= {snake(k) for k in also.get("required", [])}
        assert fields(cls) == properties, f"{cls.__name__}: client {sorted(fields(cls))} vs schema {sorted(properties)}"
        assert required(cls) == needed, f"{cls.__name__}: required {sorted(required(cls))} vs {sorted(needed)}"

    agree(Recommendations, schemas["Recommendations"])
    agree(Item, schemas["Item"])
    agree(Because, schemas["Item"]["properties"]["because"])
    agree(Explanation, schemas["Recommendations"]["properties"]["explanation"])
    agree(ArmExposure, schemas["Arm"])
    agree(Readiness, schemas["Readiness"])
    agree(SimilarItems, schemas["SimilarItems"], also=schemas["IndexSimilarItems"])
    agree(Event, schemas["FeedbackEvent"])
    receipt = spec["paths"]["/v1/events"]["post"]["responses"]["202"]["content"]["application/json"]["schema"]
    agree(IngestReceipt, receipt)
    assert duet_client.__version__
