"""Token counting and encoding at once, on different threads (the API counts tokens on
the event loop while the model encodes on its own thread): no batch may come out broken.
A shared fast tokenizer once made an encode fail under load ("expected sequence of length
64 at dim 1 (got 65)")."""

from __future__ import annotations

import threading

import numpy as np

from myaiserv.embeddings.model import Embedder


def test_counting_tokens_while_encoding_never_breaks_a_batch() -> None:
    embedder = Embedder()
    embedder.load()
    texts = [("word " * n).strip() for n in range(1, 80, 3)]  # lengths differ: padding
    expected = embedder.encode_sync(texts)
    stop = threading.Event()
    errors: list[BaseException] = []

    def count() -> None:
        while not stop.is_set():
            try:
                embedder.count_tokens(["short", "a much longer text " * 40])
            except BaseException as exc:  # noqa: BLE001 - every failure is collected and asserted on
                errors.append(exc)
                return

    counters = [threading.Thread(target=count) for _ in range(2)]
    for t in counters:
        t.start()
    try:
        for _ in range(30):
            got = embedder.encode_sync(texts)
            assert np.allclose(got, expected, atol=1e-5)
    finally:
        stop.set()
        for t in counters:
            t.join()
        embedder.close()
    assert errors == []
    assert embedder.count_tokens(["one two three"]) == [3]
