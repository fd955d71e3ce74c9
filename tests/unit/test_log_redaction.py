"""Log lines never carry the credentials of a URL, whatever the scheme and wherever the URL
sits in the line; the rest of the URL stays for diagnosis."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from myaiserv.logging import REDACTED, configure_logging, get_logger, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgresql+asyncpg://app:s3cr%40t@db:5432/app",
            f"postgresql+asyncpg://app:{REDACTED}@db:5432/app",
        ),
        ("redis://:hunter2@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
        ("rediss://default:pw@cache", f"rediss://default:{REDACTED}@cache"),
        (
            "nodes ['https://elastic:changeme@es01:9200', 'https://es02:9200']",
            f"nodes ['https://elastic:{REDACTED}@es01:9200', 'https://es02:9200']",
        ),
        ("https://sk-token@llm.example/v1", f"https://{REDACTED}@llm.example/v1"),
        ("http://es01:9200/_search?q=a@b", "http://es01:9200/_search?q=a@b"),
        ("mail ops@example.com", "mail ops@example.com"),
    ],
)
def test_url_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_every_log_line_is_scrubbed_of_the_settings_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", json_logs=True, urls=["redis://:Pl41nPassw0rd@cache:6379/0"])
        log = get_logger("test")
        log.info("connecting", urls=["https://u:Tr1ckyPw@es:9200"], nested={"dsn": "x"})
        log.warning("driver said: auth failed for Pl41nPassw0rd")  # outside its URL
        try:
            raise ConnectionError("cannot reach postgres://app:Exc3ptionPw@db/app")
        except ConnectionError:
            log.exception("failed")
        logging.getLogger("uvicorn.error").warning("via stdlib http://a:St4dlibPw@h/")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        structlog.reset_defaults()
    out = stream.getvalue()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 4
    for secret in ("Tr1ckyPw", "Pl41nPassw0rd", "Exc3ptionPw", "St4dlibPw"):
        assert secret not in out
    assert lines[0]["urls"] == [f"https://u:{REDACTED}@es:9200"]
