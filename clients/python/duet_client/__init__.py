"""A client for Duet Serve's HTTP API, with typed results and retries that honour Retry-After.

Standard library only. The routes and fields follow Serve's /openapi.json; the live tests check
that they still agree.
"""
from __future__ import annotations

import dataclasses
import datetime as _datetime
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "Client", "DuetError", "Event", "Item", "Because", "ArmExposure", "Explanation",
    "Recommendations", "SimilarItems", "IngestReceipt", "Readiness",
]
__version__ = "0.1.0"


class DuetError(Exception):
    """An answer other than success: the HTTP status, Serve's message, and Retry-After when given."""

    def __init__(self, status: int, message: str, retry_after: Optional[float] = None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Because:
    """With explain: the item from the user's history most similar to the recommended one."""
    id: str
    similarity: float
    title: Optional[str] = None


@dataclass(frozen=True)
class Item:
    id: str
    score: float
    title: Optional[str] = None
    artist: Optional[str] = None
    because: Optional[Because] = None


@dataclass(frozen=True)
class ArmExposure:
    """The experiment arm a request was assigned to, and the one that served it."""
    experiment_id: Optional[str] = None
    phase: Optional[int] = None
    assigned: Optional[str] = None
    served: Optional[str] = None
    fallback_reason: Optional[str] = None


@dataclass(frozen=True)
class Explanation:
    index: str
    artefact: Optional[str] = None
    generation: Optional[int] = None


@dataclass(frozen=True)
class Recommendations:
    user: str
    request_id: str
    bundle: str
    items: Tuple[Item, ...]
    generation: Optional[int] = None
    experiments: Tuple[ArmExposure, ...] = ()
    fallback: Optional[str] = None
    index: Optional[str] = None
    explanation: Optional[Explanation] = None


@dataclass(frozen=True)
class SimilarItems:
    """From /v1/items/{item}/similar (bundle set) or /v1/similar/{index}/items/{item} (artefact set)."""
    item: str
    index: str
    items: Tuple[Item, ...]
    generation: int
    bundle: Optional[str] = None
    artefact: Optional[str] = None
    filters: Tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestReceipt:
    accepted: int
    last_sequence: Optional[int] = None
    repeated: bool = False


@dataclass(frozen=True)
class Readiness:
    ready: bool
    generation: int
    registry_version: int
    bundle: Optional[str] = None
    activate_at: Optional[int] = None
    activated_at: Optional[int] = None
    late_by_ms: Optional[int] = None
    pending_version: Optional[int] = None
    pending_activate_at: Optional[int] = None
    reason: Optional[str] = None


Timestamp = Union[_datetime.datetime, int, float, str]


@dataclass(frozen=True)
class Event:
    """A feedback event. timestamp: a datetime, an ISO 8601 string, or a number Serve reads as
    epoch milliseconds from 1e12 and epoch seconds below."""
    user: str
    item: str
    timestamp: Timestamp
    kind: str = "play"
    weight: float = 1.0
    request_id: Optional[str] = None

    def to_json(self) -> dict:
        stamp = self.timestamp
        if isinstance(stamp, _datetime.datetime):
            if stamp.tzinfo is None:
                raise ValueError(f"event timestamp {stamp!r} has no time zone; give an aware datetime")
            stamp = stamp.isoformat()
        body = {"user": self.user, "item": self.item, "kind": self.kind, "weight": self.weight, "timestamp": stamp}
        if self.request_id is not None:
            body["requestId"] = self.request_id
        return body


def _snake(name: str) -> str:
    out = []
    for character in name:
        if character.isupper():
            out.append("_")
            out.append(character.lower())
        else:
            out.append(character)
    return "".join(out)


def _build(cls, data: Mapping[str, Any]):
    """A dataclass from a JSON object: camelCase keys to snake_case fields, unknown keys ignored
    (a newer server may add fields), nested types built by name."""
    nested = {
        (Item, "because"): Because, (Recommendations, "items"): Item, (Recommendations, "experiments"): ArmExposure,
        (Recommendations, "explanation"): Explanation, (SimilarItems, "items"): Item,
    }
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        name = _snake(key)
        if name not in names:
            continue
        inner = nested.get((cls, name))
        if inner is not None and isinstance(value, list):
            value = tuple(_build(inner, element) for element in value)
        elif inner is not None and isinstance(value, dict):
            value = _build(inner, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


class Client:
    """Duet Serve over HTTP. api_key falls back to $DUET_API_KEY; without one, no key is sent."""

    def __init__(self, base_url: str, api_key: Optional[str] = None, timeout: float = 10.0,
                 max_retries: int = 5, max_wait: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("DUET_API_KEY") or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._sleep = sleep
        #: How many times a request was retried after 503 or 429, over the client's life.
        self.retries = 0

    # Routes -----------------------------------------------------------------------------------

    def recommendations(self, user: str, n: int = 20, exclude: Sequence[str] = (), context: Optional[str] = None,
                        explain: bool = False, explain_index: Optional[str] = None) -> Recommendations:
        query = [("n", str(n))]
        if exclude:
            query.append(("exclude", ",".join(exclude)))
        if context is not None:
            query.append(("context", context))
        if explain:
            query.append(("explain", "true"))
        if explain_index is not None:
            query.append(("explainIndex", explain_index))
        path = f"/v1/users/{_segment(user)}/recommendations"
        return _build(Recommendations, self._request("GET", path, query))

    def similar(self, item: str, n: int = 20, index: Optional[str] = None, filters: Sequence[str] = (),
                exclude: Sequence[str] = ()) -> SimilarItems:
        """Similar items from the production bundle's own index (named by `index`, or its default)."""
        query = self._similar_query(n, filters, exclude)
        if index is not None:
            query.append(("index", index))
        return _build(SimilarItems, self._request("GET", f"/v1/items/{_segment(item)}/similar", query))

    def similar_from_index(self, index: str, item: str, n: int = 20, filters: Sequence[str] = (),
                           exclude: Sequence[str] = ()) -> SimilarItems:
        """Similar items from a similarity index published under its own name, e.g. tracks/similar."""
        path = f"/v1/similar/{_segment(index)}/items/{_segment(item)}"
        return _build(SimilarItems, self._request("GET", path, self._similar_query(n, filters, exclude)))

    def send_events(self, events: Iterable[Event], batch_size: int = 1000) -> list:
        """Sends events in batches, each stored once however often it is retried; returns the receipts."""
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch_size {batch_size} must be 1-10000")
        receipts = []
        batch = []
        for event in events:
            batch.append(event.to_json())
            if len(batch) == batch_size:
                receipts.append(self._send_batch(batch))
                batch = []
        if batch:
            receipts.append(self._send_batch(batch))
        return receipts

    def ready(self) -> Readiness:
        """Serve's readiness, also when it answers 503 (not ready yet); never retried."""
        try:
            return _build(Readiness, self._request("GET", "/readyz", retry=False))
        except DuetError as error:
            if error.status == 503 and isinstance(getattr(error, "body", None), dict):
                return _build(Readiness, error.body)
            raise

    # Plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _similar_query(n, filters, exclude):
        query = [("n", str(n))]
        query.extend(("filter", condition) for condition in filters)
        if exclude:
            query.append(("exclude", ",".join(exclude)))
        return query

    def _send_batch(self, batch: list) -> IngestReceipt:
        # One key per batch, kept across its retries: Serve stores the batch once and repeats the receipt.
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        return _build(IngestReceipt, self._request("POST", "/v1/events", body={"events": batch}, headers=headers))

    def _request(self, method: str, path: str, query: Sequence[Tuple[str, str]] = (), body: Any = None,
                 headers: Optional[Mapping[str, str]] = None, retry: bool = True) -> Any:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(list(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Accept": "application/json", "User-Agent": f"duet-client-python/{__version__}"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if self.api_key:
            all_headers["Authorization"] = f"Bearer {self.api_key}"
        all_headers.update(headers or {})
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as answer:
                error = _error_from(answer)
            if not retry or error.status not in (429, 503) or attempt >= self.max_retries:
                raise error
            attempt += 1
            self.retries += 1
            # Retry-After when Serve gives it (it always does on 503 and 429), else exponential backoff.
            wait = error.retry_after if error.retry_after is not None else min(2 ** attempt * 0.1, self.max_wait)
            self._sleep(min(wait, self.max_wait))


def _segment(value: str) -> str:
    """One path segment, every reserved character escaped ('/' too: an index name's slash is sent as %2F)."""
    return urllib.parse.quote(value, safe="")


def _error_from(answer: urllib.error.HTTPError) -> DuetError:
    raw = answer.read()
    message = raw.decode("utf-8", "replace")
    parsed = None
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            message = parsed["error"]
    except ValueError:
        pass
    retry_after = None
    header = answer.headers.get("Retry-After")
    if header is not None:
        try:
            retry_after = max(0.0, float(header))
        except ValueError:
            retry_after = None
    error = DuetError(answer.code, message, retry_after)
    error.body = parsed
    return error
