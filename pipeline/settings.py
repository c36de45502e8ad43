"""Every setting pagemill reads, from the environment, in one validated object.

Names and defaults follow the Celery workers pagemill replaces (see README "Configuration"),
so an existing ``.env`` keeps working. Our own settings use the ``PAGEMILL_`` prefix. No other
module reads ``os.environ``: build ``Settings()`` at the edge and pass it down.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


def _default_data_dir() -> Path:
    # XDG cache dir: data that can be rebuilt (embedded servers, page cache, local storage).
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pagemill"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """pagemill configuration; field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        populate_by_name=True, extra="ignore", frozen=True, env_file=None, case_sensitive=True
    )

    # --- Redis broker and Celery result backend --------------------------------------------
    redis_url: str | None = Field(None, validation_alias=_env("REDIS_URL", "CELERY_BROKER_URL"))
    result_backend_url: str | None = Field(None, validation_alias=_env("CELERY_RESULT_BACKEND"))
    redis_namespace: str = Field("dramatiq", validation_alias=_env("PAGEMILL_REDIS_NAMESPACE"))
    # A worker silent this long (ms) is taken for dead and its unacked messages go back to the queue.
    redis_heartbeat_timeout_ms: int = Field(
        60_000, ge=1000, validation_alias=_env("PAGEMILL_REDIS_HEARTBEAT_TIMEOUT_MS")
    )
    # Broker commands per million that also run that requeue (Dramatiq's "maintenance").
    redis_maintenance_chance: int = Field(
        1000, ge=1, le=1_000_000, validation_alias=_env("PAGEMILL_REDIS_MAINTENANCE_CHANCE")
    )
    # How long a broker command keeps retrying while Redis is unreachable (a restart, a failover),
    # seconds; 0 = fail at once. Past it, the message's own retry (or the reaper) takes over.
    redis_retry_s: float = Field(30, ge=0, le=600, validation_alias=_env("PAGEMILL_REDIS_RETRY_S"))

    # --- queues (Celery names) ----------------------------------------------------------------
    celery_default_queue: str | None = Field(None, validation_alias=_env("CELERY_DEFAULT_QUEUE"))
    celery_queue: str | None = Field(None, validation_alias=_env("CELERY_QUEUE"))
    ocr_queue: str = Field("ocr", validation_alias=_env("CELERY_OCR_QUEUE"))

    # --- OCR ------------------------------------------------------------------------------------
    # auto | onnx | tesseract | paddle, or any name registered in pipeline.ocr.registry.
    ocr_engine: str = Field("auto", pattern=r"^[a-z][a-z0-9_-]{0,31}$", validation_alias=_env("PAGEMILL_OCR_ENGINE"))
    ocr_lang: str = Field("en", validation_alias=_env("PADDLEOCR_LANG"))
    use_gpu: bool = Field(False, validation_alias=_env("PADDLEOCR_USE_GPU"))
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, validation_alias=_env("PADDLEOCR_MIN_CONFIDENCE"))
    pdf_dpi: int = Field(180, ge=36, le=600, validation_alias=_env("PADDLEOCR_PDF_DPI"))
    det_model_dir: Path | None = Field(None, validation_alias=_env("PADDLEOCR_DET_MODEL_DIR"))
    rec_model_dir: Path | None = Field(None, validation_alias=_env("PADDLEOCR_REC_MODEL_DIR"))
    cls_model_dir: Path | None = Field(None, validation_alias=_env("PADDLEOCR_CLS_MODEL_DIR"))
    # onnxruntime intra-op threads per worker process; 0 = every core this process may use, so set it
    # when several OCR processes share a machine (processes x threads = cores).
    ocr_threads: int = Field(0, ge=0, validation_alias=_env("PAGEMILL_OCR_THREADS"))
    # Which models the onnx engine runs (pipeline.ocr.onnx PROFILES): speed against accuracy.
    # Outputs made besides text and JSON (pipeline.outputs.formats): comma list of pdf, hocr, alto, md.
    # The upload field / Celery kwarg ``outputs`` override it per document.
    outputs: str = Field("", max_length=200, validation_alias=_env("PAGEMILL_OUTPUTS"))
    ocr_profile: str = Field("cascade", pattern=r"^[a-z][a-z0-9_-]{0,31}$", validation_alias=_env("PAGEMILL_OCR_PROFILE"))
    # Per page text source for PDFs: auto = read a real text layer, OCR the rest; force = OCR every
    # page; redo = like auto, and on pages mixing real text with scanned areas keep the real text and
    # OCR only the rest (pipeline.textlayer). Upload field / Celery kwarg ``ocr_mode`` override it.
    ocr_mode: Literal["auto", "force", "redo"] = Field("auto", validation_alias=_env("PAGEMILL_OCR_MODE"))

    # --- S3-compatible storage (local directory when S3_BUCKET is unset) ---------------------
    s3_endpoint_url: str | None = Field(None, validation_alias=_env("S3_ENDPOINT_URL"))
    s3_region: str = Field("us-east-1", validation_alias=_env("S3_REGION"))
    s3_access_key_id: str | None = Field(None, validation_alias=_env("S3_ACCESS_KEY_ID"))
    s3_secret_access_key: SecretStr | None = Field(None, validation_alias=_env("S3_SECRET_ACCESS_KEY"))
    s3_bucket: str | None = Field(None, validation_alias=_env("S3_BUCKET"))
    s3_prefix: str = Field("", validation_alias=_env("PAGEMILL_S3_PREFIX"))

    # --- PostgreSQL job store -------------------------------------------------------------------
    database_url: SecretStr | None = Field(None, validation_alias=_env("DATABASE_URL"))
    db_schema: str = Field("public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", validation_alias=_env("PAGEMILL_DB_SCHEMA"))
    db_pool_max: int = Field(4, ge=1, validation_alias=_env("PAGEMILL_DB_POOL_MAX"))

    # --- LLM (OpenAI-compatible) -----------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_model: str = Field("gpt-4o-mini", validation_alias=_env("OPENAI_MODEL"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    llm_context_tokens: int = Field(6000, ge=256, validation_alias=_env("PAGEMILL_LLM_CONTEXT_TOKENS"))
    llm_concurrency: int = Field(4, ge=1, validation_alias=_env("PAGEMILL_LLM_CONCURRENCY"))
    llm_timeout_s: float = Field(120.0, gt=0, validation_alias=_env("PAGEMILL_LLM_TIMEOUT_S"))
    llm_max_retries: int = Field(3, ge=0, validation_alias=_env("PAGEMILL_LLM_MAX_RETRIES"))
    # LLM calls in flight across every worker (a Redis-backed Dramatiq rate limiter); 0 = no shared limit.
    llm_max_concurrency: int = Field(8, ge=0, validation_alias=_env("PAGEMILL_LLM_MAX_CONCURRENCY"))
    # LLM steps run on every document whose upload names none (comma list, e.g. "metadata,embeddings");
    # an upload's ``postprocess`` field (``none`` for no step) overrides it.
    postprocess: str = Field("", max_length=200, validation_alias=_env("PAGEMILL_POSTPROCESS"))

    # --- embeddings and search (pgvector) ------------------------------------------------------------
    embedding_model: str = Field("text-embedding-3-small", validation_alias=_env("OPENAI_EMBEDDING_MODEL"))
    # Another OpenAI-compatible server for embeddings only; unset = OPENAI_BASE_URL.
    embedding_base_url: str | None = Field(None, validation_alias=_env("PAGEMILL_EMBEDDING_BASE_URL"))
    # Vector size asked of the model (``dimensions``); 0 = whatever its first answer has.
    embedding_dimensions: int = Field(0, ge=0, le=16_000, validation_alias=_env("PAGEMILL_EMBEDDING_DIMENSIONS"))
    # Chunks sent per /v1/embeddings request.
    embedding_batch: int = Field(64, ge=1, le=2048, validation_alias=_env("PAGEMILL_EMBEDDING_BATCH"))
    # Target chunk size, characters (paragraphs are packed up to it; a longer one is cut).
    chunk_chars: int = Field(1000, ge=100, le=20_000, validation_alias=_env("PAGEMILL_CHUNK_CHARS"))
    # HNSW candidate list size per search (pgvector's hnsw.ef_search): recall against latency.
    search_ef_search: int = Field(100, ge=1, le=1000, validation_alias=_env("PAGEMILL_SEARCH_EF_SEARCH"))
    # Vector matches less similar than this (cosine, -1..1) are dropped; 0 keeps all but the opposite.
    # Model-dependent: unrelated texts score ~0.1-0.3 with OpenAI's text-embedding-3 models.
    search_min_similarity: float = Field(0.0, ge=-1.0, le=1.0, validation_alias=_env("PAGEMILL_SEARCH_MIN_SIMILARITY"))

    # --- completion callbacks (upload field callback_url) ------------------------------------------
    # HMAC-SHA256 key of the X-Pagemill-Signature header; uploads with a callback_url need it.
    callback_secret: SecretStr | None = Field(None, validation_alias=_env("PAGEMILL_CALLBACK_SECRET"))
    callback_timeout_s: float = Field(10.0, gt=0, validation_alias=_env("PAGEMILL_CALLBACK_TIMEOUT_S"))

    # --- worker limits (Celery names; mapping to Dramatiq in README) --------------------------
    worker_concurrency: int | None = Field(None, ge=1, validation_alias=_env("CELERY_WORKER_CONCURRENCY"))
    task_time_limit: int = Field(3600, ge=1, validation_alias=_env("CELERY_TASK_TIME_LIMIT"))
    task_soft_time_limit: int = Field(3300, ge=1, validation_alias=_env("CELERY_TASK_SOFT_TIME_LIMIT"))
    prefetch_multiplier: int = Field(4, ge=1, validation_alias=_env("CELERY_WORKER_PREFETCH_MULTIPLIER"))
    max_tasks_per_child: int = Field(1000, ge=1, validation_alias=_env("CELERY_WORKER_MAX_TASKS_PER_CHILD"))
    max_retries: int = Field(3, ge=0, validation_alias=_env("PAGEMILL_MAX_RETRIES"))
    min_backoff_ms: int = Field(1000, ge=1, validation_alias=_env("PAGEMILL_MIN_BACKOFF_MS"))
    max_backoff_ms: int = Field(60_000, ge=1, validation_alias=_env("PAGEMILL_MAX_BACKOFF_MS"))
    page_time_limit: int = Field(300, ge=1, validation_alias=_env("PAGEMILL_PAGE_TIME_LIMIT"))

    # --- pagemill's own ---------------------------------------------------------------------------
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias=_env("PAGEMILL_DATA_DIR"))
    # Comma-separated; NoDecode stops pydantic-settings from expecting JSON here.
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field((), validation_alias=_env("PAGEMILL_API_KEYS"))
    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1, validation_alias=_env("PAGEMILL_MAX_UPLOAD_BYTES"))
    max_pages: int = Field(2000, ge=1, validation_alias=_env("PAGEMILL_MAX_PAGES"))
    max_page_pixels: int = Field(60_000_000, ge=1, validation_alias=_env("PAGEMILL_MAX_PAGE_PIXELS"))
    # The reaper re-sends work of documents silent for this long, seconds (> page time limit + heartbeat).
    reaper_age_s: int = Field(900, ge=1, validation_alias=_env("PAGEMILL_REAPER_AGE_S"))
    # ... at most this many times per page, then the page fails with a reason.
    reaper_max_resends: int = Field(3, ge=0, validation_alias=_env("PAGEMILL_REAPER_MAX_RESENDS"))
    # Finished documents (files, results, rows) are deleted this many days after they finished; 0 = never.
    retention_days: int = Field(30, ge=0, validation_alias=_env("PAGEMILL_RETENTION_DAYS"))
    # The per-machine cache of source files (data_dir/cache): files unused this long go, then the
    # least recently used above the size (pruned by workers as they use it and by the clock).
    cache_max_age_hours: float = Field(24.0, gt=0, validation_alias=_env("PAGEMILL_CACHE_MAX_AGE_HOURS"))
    cache_max_bytes: int = Field(5 * 1024**3, ge=0, validation_alias=_env("PAGEMILL_CACHE_MAX_BYTES"))
    # Documents deleted per purge transaction, and batches per hourly run (the next run goes on).
    retention_batch: int = Field(100, ge=1, le=10_000, validation_alias=_env("PAGEMILL_RETENTION_BATCH"))
    retention_max_batches: int = Field(50, ge=1, validation_alias=_env("PAGEMILL_RETENTION_MAX_BATCHES"))
    # Dramatiq CLI workers serve Prometheus metrics on this port (0 = off); one port per worker command.
    worker_metrics_port: int = Field(0, ge=0, le=65535, validation_alias=_env("PAGEMILL_WORKER_METRICS_PORT"))
    worker_metrics_host: str = Field("0.0.0.0", validation_alias=_env("PAGEMILL_WORKER_METRICS_HOST"))
    log_format: Literal["auto", "json", "console"] = Field("auto", validation_alias=_env("PAGEMILL_LOG_FORMAT"))
    log_level: str = Field("INFO", validation_alias=_env("PAGEMILL_LOG_LEVEL"))

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("outputs")
    @classmethod
    def _known_outputs(cls, value: str) -> str:
        from pipeline.outputs.formats import parse_outputs  # the writers: imported only to check names

        return ",".join(parse_outputs(value))  # ValueError names an unknown one

    @field_validator("postprocess")
    @classmethod
    def _known_steps(cls, value: str) -> str:
        from pipeline.postprocess import parse_steps

        return ",".join(parse_steps(value))  # ValueError names an unknown one

    @field_validator("database_url", mode="before")
    @classmethod
    def _asyncpg_dsn(cls, value: object) -> object:
        # The seeds write SQLAlchemy-style URLs (postgresql+asyncpg://); asyncpg wants the plain scheme.
        if isinstance(value, str):
            for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://", "postgresql+psycopg://"):
                if value.startswith(prefix):
                    return "postgresql://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.task_soft_time_limit > self.task_time_limit:
            raise ValueError(
                f"CELERY_TASK_SOFT_TIME_LIMIT ({self.task_soft_time_limit}) must not exceed "
                f"CELERY_TASK_TIME_LIMIT ({self.task_time_limit})"
            )
        if self.s3_bucket and (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither")
        return self

    # --- derived values ----------------------------------------------------------------------------
    @property
    def default_queue(self) -> str:
        """Queue for everything but OCR: CELERY_DEFAULT_QUEUE, else CELERY_QUEUE, else ``default``."""
        return self.celery_default_queue or self.celery_queue or "default"

    @property
    def results_url(self) -> str | None:
        """Where Celery results go: CELERY_RESULT_BACKEND, else the broker."""
        return self.result_backend_url or self.redis_url

    @property
    def languages(self) -> tuple[str, ...]:
        """The configured default OCR language(s)."""
        return tuple(part.strip() for part in self.ocr_lang.split(",") if part.strip())

    def merge_languages(self, hints: Sequence[str] | None) -> tuple[str, ...]:
        """Task ``lang_hints`` first, then PADDLEOCR_LANG, without repeats."""
        merged: list[str] = []
        for lang in [*(hints or ()), *self.languages]:
            lang = lang.strip().lower()
            if lang and lang not in merged:
                merged.append(lang)
        return tuple(merged)

    @property
    def uses_s3(self) -> bool:
        """S3 storage when a bucket is configured, else a local directory."""
        return bool(self.s3_bucket)

    @property
    def storage_dir(self) -> Path:
        """Root of local-directory storage."""
        return self.data_dir / "storage"

    @property
    def worker_metrics_dir(self) -> Path:
        """prometheus_client's multiprocess files of the workers serving ``worker_metrics_port``."""
        return self.data_dir / "worker-metrics" / str(self.worker_metrics_port)

    @property
    def cache_dir(self) -> Path:
        """Per-machine cache of source files fetched from storage, by content hash."""
        return self.data_dir / "cache"


class ExplicitSettings(Settings):
    """Settings from arguments only, ignoring the environment (for tests and embedding)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)
