"""The client against a scripted local HTTP server: retries, Retry-After, batching, idempotency keys, errors."""
import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from duet_client import Client, DuetError, Event, IngestReceipt, Recommendations


class Script:
    """Answers in order; records every request (method, path, headers, body)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []


@pytest.fixture
def server():
    scripts = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self):
            script = scripts["current"]
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            script.requests.append((self.command, self.path, dict(self.headers), body))
            status, headers, payload = script.answers.pop(0) if script.answers else (500, {}, {"error": "script ran out", "status": 500})
            if callable(payload):
                payload = payload(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = answer
        do_POST = answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def run(answers):
        scripts["current"] = Script(answers)
        return scripts["current"]

    run.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield run
    httpd.shutdown()


RECS = {"user": "u1", "requestId": "r1", "bundle": "b1", "generation": 3,
        "items": [{"id": "t1", "score": 0.5, "title": "One", "because": {"id": "t9", "similarity": 0.9}}],
        "experiments": [{"experimentId": "e", "phase": 1, "assigned": "treatment", "served": "treatment"}],
        "somethingNewer": True}


def test_503_and_429_are_retried_after_the_wait_retry_after_names(server):
    script = server([(503, {"Retry-After": "2"}, {"error": "busy", "status": 503}),
                     (429, {"Retry-After": "1"}, {"error": "slow down", "status": 429}),
                     (200, {}, RECS)])
    waits = []
    client = Client(server.url, api_key="k" * 16, sleep=waits.append)
    recs = client.recommendations("u1", n=5, exclude=["t2", "t3"], explain=True)
    assert waits == [2.0, 1.0]
    assert client.retries == 2
    assert isinstance(recs, Recommendations)
    assert recs.items[0].because.id == "t9" and recs.items[0].because.similarity == 0.9
    assert recs.experiments[0].experiment_id == "e" and recs.generation == 3
    method, path, headers, _ = script.requests[-1]
    assert method == "GET" and path == "/v1/users/u1/recommendations?n=5&exclude=t2%2Ct3&explain=true"
    assert headers["Authorization"] == "Bearer " + "k" * 16


def test_retries_stop_at_the_limit_and_the_error_says_why(server):
    server([(503, {"Retry-After": "120"}, {"error": "no production bundle yet", "status": 503})] * 3)
    waits = []
    client = Client(server.url, max_retries=2, max_wait=5, sleep=waits.append)
    with pytest.raises(DuetError) as caught:
        client.recommendations("u1")
    assert caught.value.status == 503 and caught.value.retry_after == 120
    assert "no production bundle yet" in str(caught.value)
    assert waits == [5, 5], "a long Retry-After is capped by max_wait"


def test_other_errors_are_not_retried(server):
    script = server([(404, {}, {"error": "no index named 'x'", "status": 404})])
    client = Client(server.url, sleep=lambda _: pytest.fail("a 404 must not be retried"))
    with pytest.raises(DuetError) as caught:
        client.similar_from_index("tracks/x", "t1", filters=["genre=jazz", "explicit!=true"])
    assert caught.value.status == 404 and caught.value.message == "no index named 'x'"
    assert script.requests[0][1] == "/v1/similar/tracks%2Fx/items/t1?n=20&filter=genre%3Djazz&filter=explicit%21%3Dtrue"


def test_events_go_in_batches_each_with_one_idempotency_key_across_its_retries(server):
    def receipt(body):
        return {"accepted": len(body["events"]), "lastSequence": 7, "repeated": False}

    script = server([(202, {}, receipt), (503, {"Retry-After": "1"}, {"error": "ingest overloaded", "status": 503}),
                     (202, {}, receipt), (202, {}, receipt)])
    client = Client(server.url, sleep=lambda _: None)
    when = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
    events = [Event(user=f"u{i}", item="t1", timestamp=when, request_id="r1" if i == 0 else None) for i in range(2500)]
    receipts = client.send_events(events, batch_size=1000)
    assert receipts == [IngestReceipt(1000, 7, False), IngestReceipt(1000, 7, False), IngestReceipt(500, 7, False)]
    keys = [headers["Idempotency-Key"] for _, _, headers, _ in script.requests]
    assert len(keys) == 4 and keys[1] == keys[2], "the retried batch kept its key"
    assert len({keys[0], keys[1], keys[3]}) == 3, "each batch has its own key"
    first = script.requests[0][3]["events"][0]
    assert first == {"user": "u0", "item": "t1", "kind": "play", "weight": 1.0,
                     "timestamp": "2026-12-01T12:00:00+00:00", "requestId": "r1"}


def test_bad_input_is_refused_before_anything_is_sent(server):
    script = server([])
    client = Client(server.url)
    with pytest.raises(ValueError, match="no time zone"):
        client.send_events([Event(user="u", item="t", timestamp=datetime.datetime(2026, 1, 1))])
    with pytest.raises(ValueError, match="batch_size"):
        client.send_events([], batch_size=0)
    assert script.requests == []
