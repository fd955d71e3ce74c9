"""The one exception type extraction raises, so callers map every bad upload to a 4xx."""

from __future__ import annotations


class ExtractionError(ValueError):
    """Input that cannot be turned into text.

    ``reason`` is a short machine code (``unsupported_content_type``, ``invalid_utf8``,
    ``invalid_text``, ``invalid_encoding``, ``invalid_html``, ``invalid_pdf``,
    ``encrypted_pdf``, ``empty``); ``str(exc)`` is a human message safe to show to API clients.
    """

    reason: str

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
