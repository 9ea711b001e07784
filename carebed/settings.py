"""The one settings object: every knob of every service, read from ``CAREBED_*`` variables.

Secrets (MQTT password, Twilio token, session key) come only from the environment; none has
a usable default, so a deployment that forgets one fails loudly or runs dry.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREBED_", extra="forbid", env_parse_none_str="null")

    log_level: str = Field("info", pattern="(?i)^(debug|info|warning|error)$", description="Log level.")
    data_dir: Path = Field(Path("var"), description="Private folder for the broker, database and checkpoints.")

    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port.")
    mqtt_username: str | None = Field(None, description="MQTT user of this service.")
    mqtt_password: SecretStr | None = Field(None, description="MQTT password of this service.")
    mqtt_tls: bool = Field(False, description="Connect to the broker over TLS.")
    mqtt_ca_file: Path | None = Field(None, description="CA certificate(s) that sign the broker's certificate.")
    mqtt_cert_file: Path | None = Field(None, description="Client certificate, for brokers that require one.")
    mqtt_key_file: Path | None = Field(None, description="Private key of the client certificate.")
    broker_passwords: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Service account passwords for `carebed broker sync`, as JSON: {account: password}.",
    )
    mqtt_session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, description="How long the broker keeps a stopped service's queue."
    )

    database_url: str = Field("", description="SQLAlchemy URL; default is SQLite in data_dir.")
    charts_database_url: str = Field(
        "",
        description="SQLAlchemy URL of the chart data (activity, last seen); default: beside a SQLite database"
        " in a file of its own, the same database on PostgreSQL.",
    )

    timezone: str = Field("Asia/Shanghai", description="The centre's time zone for display.")

    gas_alarm_lel_pct: float = Field(
        10.0, gt=0, le=100, description="Methane alarm level, % LEL; GB/T 50493-2019 caps a first alarm at 25 % LEL."
    )
    co_alarm_ppm: tuple[tuple[float, float], ...] = Field(
        ((300.0, 0.0), (100.0, 10.0), (50.0, 60.0)),
        description="(ppm, minutes sustained) pairs after EN 50291-1 household CO alarm response times.",
    )
    offline_after_min: float = Field(
        120.0,
        gt=0,
        description="Least event time without a message before a device is offline; the detector waits longer"
        " for a device that usually reports less often (4 of its intervals).",
    )
    floor_veto_p: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="0: the inactivity floors are the deployed rules exactly (< 10 L of water in 12 h; nothing for"
        " 12 h), so carebed is never later than them. Above 0: once a home is learned, they hold off while at least"
        " this share of its normal quiet spells get this long (fewer false alerts for long sleepers; see"
        " docs/detection.md).",
    )
    bulk_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Nice levels below its service that bulk work runs at (telemetry lanes, activity rollup,"
        " checkpoint writers), so the SOS path gets a core first; 0 for none.",
    )
    detector_checkpoint_s: float = Field(30.0, gt=0, description="Seconds between detector state checkpoints.")
    detector_wall_clock: bool = Field(
        True,
        description="Let wall-clock time advance the detector clock when devices fall silent (off for replays).",
    )

    gateway_max_future_skew_s: float | None = Field(
        300.0,
        gt=0,
        description="Reject device times this far ahead of the gateway clock; 'null' for accelerated simulations.",
    )
    influx_url: str | None = Field(None, description="InfluxDB 2 URL for the telemetry archive; no archive if unset.")
    influx_token: SecretStr | None = Field(None, description="InfluxDB API token.")
    influx_org: str = Field("carebed", description="InfluxDB organisation.")
    influx_bucket: str = Field("telemetry", description="InfluxDB bucket.")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus metrics on this port.")

    twilio_account_sid: str | None = Field(
        None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "CAREBED_TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "CAREBED_TWILIO_AUTH_TOKEN")
    )
    twilio_from: str | None = Field(None, description="Sender number (E.164) for SMS and calls.")
    twilio_api_base: str | None = Field(None, description="Base URL of Twilio's REST API (a local mock in tests).")
    public_url: str | None = Field(
        None,
        pattern="^https?://[^/]+$",
        description="Address Twilio reaches this service at (scheme and host, no path); webhooks are off without it.",
    )
    escalation_time_scale: float = Field(
        1.0, gt=0, le=1, description="Multiply every escalation wait by this (drills and tests shorten them)."
    )

    http_host: str = Field("127.0.0.1", description="Address the alerting service listens on.")
    http_port: int = Field(8000, ge=1, le=65535, description="Port of the console and REST API.")
    session_secret: SecretStr | None = Field(
        None, description="Key that signs console session cookies; a random one per start if unset."
    )
    secure_cookies: bool = Field(False, description="Mark session cookies Secure (set behind HTTPS).")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'carebed.db').resolve()}"

    @property
    def charts_sqlalchemy_url(self) -> str:
        """On SQLite a file of its own: one write lock per file, and no alert may wait behind a chart write.

        PostgreSQL locks rows: there the charts share the database.
        """
        if self.charts_database_url:
            return self.charts_database_url
        url = make_url(self.sqlalchemy_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return self.sqlalchemy_url
        main = Path(url.database)
        return url.set(database=str(main.with_name(f"{main.stem}-charts{main.suffix}"))).render_as_string()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_from)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
