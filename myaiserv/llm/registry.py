"""Providers built from settings (in the app's lifespan: clients hold connection pools),
and the model names clients may ask for.

A client names either an alias (``llm.aliases``: a knowledge-base model, retrieval on by
default, with failover targets) or a provider's model, as ``provider/model`` or, when
only one provider serves it, plain ``model`` (retrieval off unless the request asks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from myaiserv.config import LLMSettings, ProviderSettings
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.llm.base import Provider
from myaiserv.llm.extractive import ExtractiveProvider
from myaiserv.secrets.store import SecretResolver


@dataclass(frozen=True)
class Target:
    provider: Provider
    settings: ProviderSettings
    model: str

    @property
    def label(self) -> str:
        return f"{self.settings.name}/{self.model}"

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        s = self.settings
        return round(
            prompt_tokens / 1000 * s.price_input_per_1k
            + completion_tokens / 1000 * s.price_output_per_1k,
            8,
        )


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as the client asked
    targets: list[Target]  # failover order
    retrieval: bool
    description: str = ""


class ProviderRegistry:
    def __init__(
        self,
        settings: LLMSettings,
        embedder: CachedEmbedder,
        secrets: SecretResolver | None = None,
    ) -> None:
        self.settings = settings
        self.providers: dict[str, tuple[Provider, ProviderSettings]] = {}
        for p in settings.providers:
            if p.kind == "extractive":
                provider: Provider = ExtractiveProvider(p.name, embedder)
            else:
                from myaiserv.llm.openai_provider import OpenAIProvider

                key_source = (
                    partial(secrets.get, p.api_key_secret)
                    if p.api_key_secret and secrets is not None
                    else None
                )
                provider = OpenAIProvider(p, key_source=key_source)
            self.providers[p.name] = (provider, p)

    async def aclose(self) -> None:
        for provider, _ in self.providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    def target(self, provider_name: str, model: str) -> Target | None:
        found = self.providers.get(provider_name)
        if found is None or model not in found[1].models:
            return None
        return Target(found[0], found[1], model)

    def resolve(self, name: str) -> ResolvedModel | None:
        alias = self.settings.aliases.get(name)
        if alias is not None:
            targets = [self.target(*t.split("/", 1)) for t in alias.targets]
            if not self.settings.failover:
                targets = targets[:1]
            return ResolvedModel(
                name, [t for t in targets if t], alias.retrieval, alias.description
            )
        if "/" in name:
            target = self.target(*name.split("/", 1))
            return ResolvedModel(name, [target], False) if target else None
        serving = [t for p in self.providers if (t := self.target(p, name))]
        return ResolvedModel(name, serving[:1], False) if len(serving) == 1 else None

    def model_names(self) -> list[tuple[str, str, bool]]:
        """(id, owner, retrieval) for GET /v1/models: aliases first."""
        out = [(name, "myaiserv", a.retrieval) for name, a in self.settings.aliases.items()]
        for provider_settings in self.settings.providers:
            for model in provider_settings.models:
                out.append((f"{provider_settings.name}/{model}", provider_settings.name, False))
        return out
