"""The `tracing` settings group: defaults, endpoints by exporter, refused values."""

from __future__ import annotations

import pytest

from myaiserv.config import Settings, SettingsError, TracingSettings, load_settings


def test_off_by_default() -> None:
    tracing = TracingSettings()
    assert tracing.exporter == "none" and not tracing.enabled
    assert tracing.sample_ratio == 1.0 and tracing.service_name == "myaiserv"
    assert tracing.trace_url("0" * 32) is None


@pytest.mark.parametrize(
    ("exporter", "endpoint"),
    [
        ("otlp", "http://127.0.0.1:4318/v1/traces"),
        ("zipkin", "http://127.0.0.1:9411/api/v2/spans"),
    ],
)
def test_endpoint_defaults_by_exporter(exporter: str, endpoint: str) -> None:
    tracing = TracingSettings(exporter=exporter)  # type: ignore[arg-type]
    assert tracing.enabled and tracing.export_url == endpoint
    given = TracingSettings(exporter=exporter, endpoint="http://collector:1234/x")  # type: ignore[arg-type]
    assert given.export_url == "http://collector:1234/x"


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAISERV_TRACING__EXPORTER", "zipkin")
    monkeypatch.setenv("MYAISERV_TRACING__SAMPLE_RATIO", "0.25")
    monkeypatch.setenv("MYAISERV_TRACING__ENDPOINT", "")  # a Compose pass-through: unset
    monkeypatch.setenv("MYAISERV_TRACING__UI_URL", "http://z:9411/zipkin/traces/{trace_id}")
    tracing = Settings().tracing
    assert tracing.exporter == "zipkin" and tracing.sample_ratio == 0.25
    assert tracing.endpoint is None
    assert tracing.trace_url("ab" * 16) == f"http://z:9411/zipkin/traces/{'ab' * 16}"


def test_the_instance_defaults_to_the_web_instance() -> None:
    assert Settings(instance_name="web-1").instance == "web-1"
    assert Settings(port=8123).instance.endswith(":8123")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EXPORTER", "jaeger", "MYAISERV_TRACING__EXPORTER"),
        ("SAMPLE_RATIO", "1.5", "MYAISERV_TRACING__SAMPLE_RATIO"),
        ("SAMPLE_RATIO", "-0.1", "MYAISERV_TRACING__SAMPLE_RATIO"),
        ("ENDPOINT", "collector:4318", "MYAISERV_TRACING__ENDPOINT"),
        ("UI_URL", "http://z/traces", "{trace_id}"),
        ("SERVICE_NAME", "", "MYAISERV_TRACING__SERVICE_NAME"),
    ],
)
def test_malformed_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"MYAISERV_TRACING__{variable}", value)
    with pytest.raises(SettingsError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_settings()
