"""The one settings object: every knob of every service, read from ``CAREBED_*`` variables.

Secrets (MQTT password, Twilio token, session key) come only from the environment; none has
a usable default, so a deployment that forgets one fails loudly or runs dry.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

# Exit code of a process that stopped on a configuration error (EX_CONFIG of sysexits.h):
# restarting it cannot help, so `carebed up` does not.
CONFIG_ERROR_EXIT = 78
# CAREBED_* names that are not settings of carebed itself: read by the test suite.
TOOL_VARIABLES = frozenset({"CAREBED_SCREENSHOTS"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREBED_", extra="forbid", env_parse_none_str="null")

    log_level: str = Field(
        "info",
        pattern="(?i)^(debug|info|warning|error)$",
        description="Level of the services' JSON logs: debug, info, warning or error; at info and above no name or"
        " phone number is logged.",
    )
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
        7 * 24 * 3600,
        ge=0,
        description="Seconds the broker keeps a stopped service's session and the messages queued for it (MQTT 5"
        " session expiry); a service down for longer misses them.",
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
    detector_checkpoint_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between detector state checkpoints (in data_dir/detector/); a restarted detector"
        " resumes from the last one instead of relearning every home.",
    )
    detector_wall_clock: bool = Field(
        True,
        description="Let wall-clock time advance the detector clock when devices fall silent, so that silence"
        " itself is noticed (inactivity, offline devices); off for replays of recorded data.",
    )

    gateway_max_future_skew_s: float | None = Field(
        300.0,
        gt=0,
        description="Seconds a device time may be ahead of the gateway clock; a time further ahead is replaced by the"
        " receive time and flagged in the reading. 'null' turns the check off, for accelerated simulations.",
    )
    gateway_device_rate_per_s: float | None = Field(
        1.0,
        gt=0,
        description="Messages a second a device (or a zigbee2mqtt hub) may send on average, rejected ones included;"
        " beyond, they are dropped as rate_limited. 'null' for no limit (accelerated simulations).",
    )
    gateway_device_burst: int = Field(
        600,
        ge=1,
        description="Messages a device may send at once above its rate: what a watch stores in 10 hours offline.",
    )
    gateway_device_event_rate_per_s: float = Field(
        0.1, gt=0, description="Events (SOS, fall, leak) a second a device may send on average, apart from the rest."
    )
    gateway_device_event_burst: int = Field(
        10,
        ge=1,
        description="Events a device may send at once: its first SOS, and the first after a quiet spell, pass.",
    )
    gateway_rejections_told_per_min: int = Field(
        10,
        ge=1,
        description="Rejections logged and published as dead letters per device and reason each minute;"
        " the rest are counted, and summed in one log line.",
    )
    log_dir: Path | None = Field(
        None, description="Write each process's JSON log to {log_dir}/{service}.log, rotated, instead of stderr."
    )
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Size at which the log file is rotated.")
    log_backups: int = Field(5, ge=1, description="Rotated log files kept beside the current one.")
    influx_url: str | None = Field(None, description="InfluxDB 2 URL for the telemetry archive; no archive if unset.")
    influx_token: SecretStr | None = Field(None, description="InfluxDB API token.")
    influx_org: str = Field("carebed", description="InfluxDB organisation.")
    influx_bucket: str = Field("telemetry", description="InfluxDB bucket.")
    metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve Prometheus metrics on this port.")

    twilio_account_sid: str | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "CAREBED_TWILIO_ACCOUNT_SID"),
        description="Twilio account SID (AC...); without it, the auth token and the sender, messages are dry runs.",
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "CAREBED_TWILIO_AUTH_TOKEN"),
        description="Twilio auth token: authenticates requests to Twilio and checks its webhooks' signatures.",
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
        None,
        description="Key that signs console session cookies; if unset, one generated once and kept (0600) in"
        " data_dir/session.secret.",
    )
    secure_cookies: bool = Field(False, description="Mark session cookies Secure (set behind HTTPS).")
    login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords for one account within login_window_s before it is locked."
    )
    login_max_failures_per_address: int = Field(
        20, ge=1, description="Wrong passwords from one client address within login_window_s before it is locked."
    )
    login_window_s: float = Field(900.0, gt=0, description="Window over which wrong passwords are counted.")
    login_lockout_s: float = Field(
        900.0, gt=0, description="How long a locked account or address is refused, right password or not."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that /metrics of the alerting service accepts from other hosts; loopback only"
        " if unset.",
    )

    health_report_s: float = Field(5.0, gt=0, description="Seconds between each process's lane health reports.")
    health_stale_s: float = Field(
        20.0, gt=0, description="A process whose last health report is older than this counts as degraded."
    )
    health_stall_s: float = Field(
        30.0, gt=0, description="A lane whose oldest unacknowledged input is older than this is stalled."
    )
    health_commit_timeout_s: float = Field(
        2.0, gt=0, description="Health is degraded if the database cannot commit a write within this."
    )
    health_min_free_disk_pct: float = Field(
        5.0, ge=0, le=100, description="Health is degraded when the disk holding data_dir has less free space (%)."
    )
    health_processes: tuple[str, ...] = Field(
        (),
        description="Processes whose health report must be present (JSON list, e.g. gateway, gateway-events,"
        " detector, alarms); reports once seen are always watched.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    @field_validator("database_url", "charts_database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value:
            try:
                make_url(value).get_dialect()
            except (ArgumentError, NoSuchModuleError, ValueError):
                raise ValueError(
                    "not a database URL carebed can use; e.g. postgresql+psycopg://carebed@localhost/carebed"
                    " or sqlite:////srv/carebed/carebed.db"
                ) from None
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


class ConfigurationError(ValueError):
    """A setting is wrong; the message says which and how to fix it, in one line."""


def setting_names() -> dict[str, str]:
    """Every environment name a setting is read from, and the field it sets."""
    names = {}
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [f"CAREBED_{field_name.upper()}"]
        names.update({str(choice): field_name for choice in choices})
    return names


def check_environment(environ: Mapping[str, str], also_valid: Collection[str] = ()) -> None:
    """Refuse an unknown CAREBED_* name (a typo would otherwise be silently ignored), naming the closest."""
    valid = [name for name in setting_names() if name.startswith("CAREBED_")] + list(also_valid)
    for name in sorted(environ):
        if name.startswith("CAREBED_") and name not in valid and name not in TOOL_VARIABLES:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see docs/operations.md for the settings"
            raise ConfigurationError(f"unknown setting {name} in the environment: {hint}")


def load_settings(environ: Mapping[str, str], also_valid: Collection[str] = (), **overrides: object) -> Settings:
    """The settings, or one ConfigurationError line naming the variable at fault and what it should be."""
    check_environment(environ, also_valid)
    try:
        base = get_settings()
        if not overrides:
            return base
        # Only what the environment set: a default copied over would count as configured (`carebed up
        # --data-dir` would then pin its broker to 1883 instead of a port of its own).
        values = {name: getattr(base, name) for name in base.model_fields_set}
        return Settings.model_validate({**values, **overrides})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, set(overrides))) from None
    except SettingsError as exc:  # a value that should be JSON (a list, a mapping) and is not
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"CAREBED_{field.group(1).upper()}" if field else "a CAREBED_* variable"
        raise ConfigurationError(f"{name}: not valid JSON; fix or unset it") from None


def _describe(exc: ValidationError, overridden: set[str]) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    by_field = {f: name for name, f in reversed(setting_names().items())}
    source = f"--{field.replace('_', '-')}" if field in overridden else by_field.get(field, field)
    reason = str(error["msg"]).removeprefix("Value error, ")
    info = Settings.model_fields.get(field)
    secret = info is not None and ("SecretStr" in str(info.annotation) or field.endswith("database_url"))
    shown = "" if secret or "input" not in error else f"={error['input']!r}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}{shown}: {reason}; fix or unset it{more}"
