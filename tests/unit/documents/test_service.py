"""Pure parts of the documents service."""

from __future__ import annotations

import uuid

from myaiserv.documents.service import chunk_document_id


def test_a_chunk_id_names_its_document() -> None:
    doc = uuid.uuid4()
    assert chunk_document_id(f"{doc}:3:0123abcd") == doc
    for other in ("", "no-colon", "not-a-uuid:0:ab", f":{doc}"):
        assert chunk_document_id(other) is None
