"""Locust users against MyAIServ (loopback only): `ApiUser` for `bench/load.py`,
`SoakUser` for `bench/soak.py` (name the class on locust's command line).

ApiUser's weights: search 6, write 2, read back 1, chat 1. Writes carry a unique token;
every 201 is an acknowledged write, saved (id and token) to $LOAD_ACK when the run ends,
with the count of answers by status, so `bench/load.py` can reconcile them afterwards.

SoakUser keeps its corpus bounded, so that a soak measures what the service keeps, not
what it is given to keep: search 8, write 3 (a new document while the user holds fewer
than $SOAK_DOCS_PER_USER of its own, else a delete of its oldest), update 2 (new text for
one of its own documents), read 1, chat 2 (each answer records a run), runs search 2.
Only the user that wrote a document changes it, one request at a time, so the version
each 2xx answer carries is its latest; $LOAD_ACK then also holds every acknowledged
version, every acknowledged delete and the runs the chat answers named.

429s are designed answers (rate limits), not errors: they are counted apart. With
$LOAD_LOG set, every request is logged (start time, name, status, milliseconds; status 0:
no HTTP answer) for percentiles per time window.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import Counter
from typing import Any

from locust import HttpUser, between, events

with open(os.environ["LOAD_DATA"]) as _f:  # {"queries": [...], "texts": [...]}
    _DATA = json.load(_f)
QUERIES: list[str] = _DATA["queries"]
TEXTS: list[str] = _DATA["texts"]
ACKED: dict[str, str] = {}  # document id -> its token
VERSIONS: dict[str, int] = {}  # document id -> the latest version a 2xx answer gave
DELETED: set[str] = set()
RUNS: set[str] = set()  # run ids the chat answers gave
STATUSES: Counter[int] = Counter()
RNG = random.Random()  # noqa: S311 - picking test data, not secrets
DOCS_PER_USER = int(os.environ.get("SOAK_DOCS_PER_USER", "40"))
SOAK_WAIT_S = float(os.environ.get("SOAK_WAIT_S", "0.5"))  # the mean pause between tasks
_LOG = open(os.environ["LOAD_LOG"], "w", buffering=1 << 16) if os.environ.get("LOAD_LOG") else None  # noqa: SIM115


if _LOG is not None:

    @events.request.add_listener
    def _log(
        name: str, response_time: float, response: Any = None, start_time: float = 0, **_: Any
    ) -> None:
        status = getattr(response, "status_code", 0) or 0
        _LOG.write(f"{start_time:.3f} {name} {status} {response_time:.1f}\n")


@events.quitting.add_listener
def _save(environment: Any, **_: object) -> None:
    if _LOG is not None:
        _LOG.close()
    with open(os.environ["LOAD_ACK"], "w") as f:
        json.dump(
            {
                "acked": ACKED,
                "statuses": {str(k): v for k, v in STATUSES.items()},
                "versions": VERSIONS,
                "deleted": sorted(DELETED),
                "runs": sorted(RUNS),
            },
            f,
        )


class Client(HttpUser):
    """The requests; the users below weigh them."""

    abstract = True

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['LOAD_KEY']}"
        self.mine: list[str] = []  # this user's documents, oldest first

    def _call(self, method: str, name: str, url: str, body: Any, ok: tuple[int, ...]) -> Any:
        with self.client.request(method, url, json=body, name=name, catch_response=True) as resp:
            STATUSES[resp.status_code] += 1
            if resp.status_code in ok or resp.status_code == 429:
                resp.success()  # a 429 is a designed answer, counted apart
            else:
                resp.failure(f"status {resp.status_code}")
            return resp

    def _post(self, name: str, url: str, body: dict, ok: tuple[int, ...]) -> Any:
        return self._call("POST", name, url, body, ok)

    def search(self) -> None:
        self._post("search", "/v1/search", {"query": RNG.choice(QUERIES), "size": 10}, (200,))

    def write(self) -> None:
        token = "tok" + uuid.uuid4().hex[:12]
        body = {"title": f"load {token}", "text": f"{RNG.choice(TEXTS)} {token}"}
        resp = self._post("write", "/v1/documents", body, (201,))
        if resp.status_code == 201:
            doc = resp.json()
            ACKED[doc["id"]] = token
            VERSIONS[doc["id"]] = doc["version"]
            self.mine.append(doc["id"])

    def write_bounded(self) -> None:
        """A new document, or, once this user holds its share, a delete of its oldest."""
        if len(self.mine) < DOCS_PER_USER:
            self.write()
            return
        doc_id = self.mine[0]
        resp = self._call("DELETE", "delete", f"/v1/documents/{doc_id}", None, (204,))
        if resp.status_code == 204:
            self.mine.pop(0)
            DELETED.add(doc_id)

    def update(self) -> None:
        if not self.mine:
            return
        doc_id = RNG.choice(self.mine)
        body = {"text": f"{RNG.choice(TEXTS)} {ACKED[doc_id]} v{VERSIONS[doc_id] + 1}"}
        resp = self._call("PATCH", "update", f"/v1/documents/{doc_id}", body, (200,))
        if resp.status_code == 200:
            VERSIONS[doc_id] = resp.json()["version"]

    def read(self) -> None:
        ids = self.mine or list(ACKED)
        if not ids:
            return
        doc_id = RNG.choice(ids)
        with self.client.get(f"/v1/documents/{doc_id}", name="read", catch_response=True) as r:
            STATUSES[r.status_code] += 1
            if r.status_code == 200 or r.status_code == 429:
                r.success()
            else:
                r.failure(f"status {r.status_code}")

    def chat(self) -> None:
        question = RNG.choice(QUERIES)
        body = {"model": "myaiserv-rag", "messages": [{"role": "user", "content": question}]}
        resp = self._post("chat", "/v1/chat/completions", body, (200,))
        if resp.status_code == 200 and resp.json().get("run_id"):
            RUNS.add(resp.json()["run_id"])

    def runs_search(self) -> None:
        """Text search over the recorded runs, a filtered list, or the dashboard figures."""
        body: dict[str, Any] = RNG.choice(
            [
                {"query": " ".join(RNG.choice(QUERIES).split()[:4]), "size": 10},
                {"filters": {"status": ["ok"]}, "sort": "latency", "size": 20},
                {"aggregations": True, "size": 1},
            ]
        )
        self._post("runs_search", "/v1/runs/search", body, (200,))


class ApiUser(Client):
    wait_time = between(0.0, 0.05)
    tasks = {Client.search: 6, Client.write: 2, Client.read: 1, Client.chat: 1}  # noqa: RUF012


class SoakUser(Client):
    wait_time = between(0.0, 2 * SOAK_WAIT_S)
    tasks = {  # noqa: RUF012
        Client.search: 8,
        Client.write_bounded: 3,
        Client.update: 2,
        Client.read: 1,
        Client.chat: 2,
        Client.runs_search: 2,
    }
