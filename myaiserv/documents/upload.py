"""A multipart upload into a new document: the file read within the upload limit, its
text extracted (plain text, Markdown, HTML, PDF), the form's tags and metadata parsed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.datastructures import UploadFile

from myaiserv.config import LimitSettings
from myaiserv.documents.service import NewDocument
from myaiserv.errors import AppError
from myaiserv.extract import ExtractionError, extract
from myaiserv.kit.inputguard import json_depth
from myaiserv.kit.validation import InvalidInputError


class PayloadTooLargeError(AppError):
    status_code = 413
    title = "Payload too large"


class UnsupportedMediaTypeError(AppError):
    status_code = 415
    title = "Unsupported media type"


@dataclass
class UploadForm:
    file: UploadFile
    title: str | None = None
    source: str | None = None
    tags: str | None = None  # comma-separated
    metadata: str | None = None  # a JSON object


def parse_tags(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def parse_metadata(value: str | None, max_depth: int) -> dict[str, Any]:
    """The form's metadata: a JSON object, nested at most ``max_depth`` levels (checked
    before it is parsed, as the request body is)."""
    if not value:
        return {}
    if json_depth(value.encode("utf-8", "surrogatepass")) > max_depth:
        raise InvalidInputError("metadata", f"JSON nested deeper than {max_depth} levels")
    try:
        metadata = msgspec.json.decode(value)
    except msgspec.DecodeError:
        raise InvalidInputError("metadata", "not valid JSON") from None
    if not isinstance(metadata, dict):
        raise InvalidInputError("metadata", "must be a JSON object")
    return metadata


async def read_upload(form: UploadForm, limits: LimitSettings) -> NewDocument:
    """The document an upload describes; 413 over the upload limit, 415 for a type we
    cannot read, 422 for a file we cannot extract text from or metadata we cannot read."""
    limit = limits.max_upload_bytes
    content = await form.file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLargeError(f"file: larger than the {limit}-byte upload limit")
    try:
        # Parsing a large PDF is CPU work: keep it off the event loop.
        extracted = await asyncio.to_thread(
            extract, content, form.file.content_type, form.file.filename
        )
    except ExtractionError as exc:
        if exc.reason == "unsupported_content_type":
            raise UnsupportedMediaTypeError(f"file: {exc}") from None
        raise InvalidInputError("file", str(exc)) from None
    metadata = parse_metadata(form.metadata, limits.max_json_depth)
    return NewDocument(
        text=extracted.text,
        content_type=extracted.content_type,
        title=form.title or extracted.title,
        source=form.source or form.file.filename,
        tags=parse_tags(form.tags),
        metadata=metadata,
        extracted=True,
        page_starts=extracted.page_starts,
    )
