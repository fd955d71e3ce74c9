"""Locust users for `bench/load.py`: a read/write mix against MyAIServ (loopback only).

Weights: search 6, write 2, read back 1, chat 1. Writes carry a unique token; every 201 is
an acknowledged write, saved (id and token) to $LOAD_ACK when the run ends, with the
count of answers by status, so `bench/load.py` can reconcile them afterwards. 429s are
designed answers (rate limits), not errors: they are counted apart.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import Counter

from locust import HttpUser, between, events, task

with open(os.environ["LOAD_DATA"]) as _f:  # {"queries": [...], "texts": [...]}
    _DATA = json.load(_f)
QUERIES: list[str] = _DATA["queries"]
TEXTS: list[str] = _DATA["texts"]
ACKED: dict[str, str] = {}
STATUSES: Counter[int] = Counter()
RNG = random.Random()  # noqa: S311 - picking test data, not secrets


@events.quitting.add_listener
def _save(environment, **_: object) -> None:
    with open(os.environ["LOAD_ACK"], "w") as f:
        json.dump({"acked": ACKED, "statuses": {str(k): v for k, v in STATUSES.items()}}, f)


class ApiUser(HttpUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['LOAD_KEY']}"

    def _post(self, name: str, url: str, body: dict, ok: tuple[int, ...]):
        with self.client.post(url, json=body, name=name, catch_response=True) as resp:
            STATUSES[resp.status_code] += 1
            if resp.status_code in ok or resp.status_code == 429:
                resp.success()  # a 429 is a designed answer, counted apart
            else:
                resp.failure(f"status {resp.status_code}")
            return resp

    @task(6)
    def search(self) -> None:
        self._post("search", "/v1/search", {"query": RNG.choice(QUERIES), "size": 10}, (200,))

    @task(2)
    def write(self) -> None:
        token = "tok" + uuid.uuid4().hex[:12]
        body = {"title": f"load {token}", "text": f"{RNG.choice(TEXTS)} {token}"}
        resp = self._post("write", "/v1/documents", body, (201,))
        if resp.status_code == 201:
            ACKED[resp.json()["id"]] = token

    @task(1)
    def read(self) -> None:
        if not ACKED:
            return
        doc_id = RNG.choice(list(ACKED))
        with self.client.get(f"/v1/documents/{doc_id}", name="read", catch_response=True) as r:
            STATUSES[r.status_code] += 1
            if r.status_code == 200 or r.status_code == 429:
                r.success()
            else:
                r.failure(f"status {r.status_code}")

    @task(1)
    def chat(self) -> None:
        question = RNG.choice(QUERIES)
        body = {"model": "myaiserv-rag", "messages": [{"role": "user", "content": question}]}
        self._post("chat", "/v1/chat/completions", body, (200,))
