"""PDF text via pypdf; every failure of a malformed file becomes an ExtractionError."""

from __future__ import annotations

import io
import logging

from pypdf import PasswordType, PdfReader

from myaiserv.extract._errors import ExtractionError

log = logging.getLogger(__name__)


def pdf_to_text(data: bytes) -> tuple[list[str], str | None]:
    """Return (each page's text, in order; "" for a page without text, metadata title)."""
    if not data.lstrip().startswith(b"%PDF-"):
        raise ExtractionError(
            "invalid_pdf", "The content is not a PDF (it does not start with '%PDF-')."
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types (PdfReadError, KeyError, ...) on bad files
        raise ExtractionError("invalid_pdf", f"The PDF could not be read: {exc}") from None

    if encrypted:
        try:
            decrypted = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except Exception:  # noqa: BLE001 - e.g. AES without the optional crypto dependency
            decrypted = False
        if not decrypted:
            raise ExtractionError(
                "encrypted_pdf", "The PDF is encrypted and cannot be opened without a password."
            )

    try:
        pages = list(reader.pages)
    except Exception as exc:  # noqa: BLE001 - the listener is best effort; polling remains
        raise ExtractionError("invalid_pdf", f"The PDF could not be read: {exc}") from None

    texts: list[str] = []
    failed = 0
    for number, page in enumerate(pages, start=1):
        try:
            texts.append((page.extract_text() or "").replace("\x00", ""))
        except Exception as exc:  # noqa: BLE001 - keep the readable pages of a partly damaged file
            texts.append("")
            failed += 1
            log.warning("pdf page %d: text extraction failed: %s", number, exc)
    if pages and failed == len(pages):
        raise ExtractionError("invalid_pdf", "The PDF could not be read: no page was readable.")

    title: str | None = None
    try:
        metadata = reader.metadata
        raw = metadata.title if metadata is not None else None
        if isinstance(raw, str):
            title = " ".join(raw.replace("\x00", "").split()) or None
    except Exception:  # noqa: BLE001 - a broken Info dictionary only costs us the title
        title = None
    return texts, title
