"""Pure core of the detector: emergency rules that need no learning, driven by event time.

Leaks, gas, carbon monoxide and silent devices need a little state per device (an open episode,
how long a level has lasted, when it last spoke and how often it usually does); SOS and falls
need none and are raised apart (detector/alarms.py).

A device is offline when it is clearly overdue for its own reporting interval (learned), not
after a fixed half hour: a meter that reports hourly is not late at 31 minutes. Silences with
an ordinary reason are ruled out: a watch last seen off the wrist (on the charger, off for the
night) and a watch that fell silent while nothing at home was used (out with a watch linked
through the home hub). Device findings are technical: they go to a technician, never the family.

The clock is the newest device timestamp seen (or a tick from the caller), never the wall
clock, so a replay at any speed gives the same findings. Each finding's id is derived from
the device and the event time of its onset, so processing the same reading twice yields the
same id and the alerting service folds the copy away.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from carebed.schemas import (
    DeviceEvent,
    DeviceKind,
    Feedback,
    Finding,
    FindingCode,
    Reading,
    Severity,
    evidence_of,
)
from carebed.topics import DeviceChannel
from detector.meters import learn_upload
from detector.wording import duration


@dataclass(frozen=True, slots=True)
class RuleConfig:
    gas_alarm_lel_pct: float = 10.0
    co_alarm_levels: tuple[tuple[float, float], ...] = ((300.0, 0.0), (100.0, 10.0), (50.0, 60.0))
    offline_after: timedelta = timedelta(hours=2)
    overdue_intervals: float = 4.0
    # A watch off the wrist or silent by habit is silent for an ordinary reason for up to this long; one out with
    # its resident (nothing used at home since: a trip nobody declared) for up to ``out_silence``.
    known_silence: timedelta = timedelta(hours=24)
    out_silence: timedelta = timedelta(hours=72)
    # Water used at home (above what any cistern leak runs), as a sign that the resident is in.
    home_use_l: float = 2.0
    leak_l_min: float = 0.35


@dataclass(slots=True)
class DeviceState:
    home_id: str
    kind: DeviceKind
    last_ts: datetime
    offline_reported: bool = False
    open_episodes: set[FindingCode] = field(default_factory=set)
    co_since: dict[float, datetime] = field(default_factory=dict)
    interval_s: float | None = None
    upload_s: float | None = None
    heard_at: datetime | None = None  # the clock when its last reading came: a batch arrives at one moment
    worn: bool | None = None
    volume: float | None = None
    silent_bins: array[float] | None = None  # a watch's days silent in each half hour (UTC), decayed
    days: float = 0.0
    day: int = 0


# How fast a device's usual reporting interval follows what it does; gaps over 3 of them are outages, not learned.
INTERVAL_WEIGHT = 0.1
OUTAGE_GAPS = 3.0
NEVER = datetime.min.replace(tzinfo=UTC)
HALF_HOURS = 48
HABIT_DECAY = 0.95
HABIT_DAYS = 3.0
HABIT_SHARE = 0.15  # a silence through half hours this often silent is a habit (the night stand, the charger) ...
HABIT_NOW = 0.05  # ... while it is still usual for the watch to be silent at this time of day
BACK_GRACE = timedelta(minutes=30)  # a hub-linked watch reconnects this long after its resident is back


# A detector's own alarm flag: one finding when it turns on, re-armed when it turns off.
_FLAG_FINDINGS: tuple[tuple[str, FindingCode, Severity, str], ...] = (
    ("leak", FindingCode.WATER_LEAK, Severity.HIGH, "Water leak reported by the sensor"),
    ("gas_alarm", FindingCode.GAS_ALARM, Severity.CRITICAL, "The gas detector is alarming"),
    ("co_alarm", FindingCode.CO_ALARM, Severity.CRITICAL, "The carbon monoxide detector is alarming"),
    ("smoke", FindingCode.SMOKE_ALARM, Severity.CRITICAL, "The smoke detector is alarming"),
)


class RuleEngine:
    """Keyed by device within home; its whole state pickles for checkpoints."""

    def __init__(self, config: RuleConfig) -> None:
        self.config = config
        self.devices: dict[str, DeviceState] = {}
        self.clock: datetime | None = None
        self._last_sweep: datetime | None = None
        # When each metered home last used water or gas, to tell a watch out with its resident from a broken one.
        self.home_use: dict[str, datetime] = {}

    def process(self, reading: Reading) -> list[Finding]:
        state = self.devices.get(reading.device_id)
        if state is None:
            state = DeviceState(reading.home_id, reading.device_kind, reading.ts)
            self.devices[reading.device_id] = state
        findings: list[Finding] = []
        if reading.channel is not DeviceChannel.STATUS or reading.online:
            self._heard(state, reading)
        if reading.event is DeviceEvent.LEAK and _opens(state, FindingCode.WATER_LEAK):
            findings.append(
                self._finding(
                    reading,
                    FindingCode.WATER_LEAK,
                    Severity.HIGH,
                    "Water leak detected",
                    reading.ts,
                    evidence_of(event=reading.event.value, seq=reading.seq),
                )
            )
        for field_name, code, severity, summary in _FLAG_FINDINGS:
            flag = getattr(reading, field_name)
            if flag is False:
                state.open_episodes.discard(code)
            elif flag and _opens(state, code):
                findings.append(self._finding(reading, code, severity, summary, reading.ts, {field_name: True}))
        if reading.ch4_lel_pct is not None:
            findings.extend(self._gas(reading, state))
        if reading.co_ppm is not None:
            findings.extend(self._co(reading, state))
        findings.extend(self.advance(reading.ts))
        return findings

    def advance(self, now: datetime) -> list[Finding]:
        """Move the event-time clock forward and raise the findings that time alone causes."""
        if self.clock is not None and now <= self.clock:
            return []
        self.clock = now
        sweep_every = self.config.offline_after / 10
        if self._last_sweep is not None and now - self._last_sweep < sweep_every:
            return []
        self._last_sweep = now
        return self._offline(now)

    def _heard(self, state: DeviceState, reading: Reading) -> None:
        """A sign of life: learn the device's usual interval and upload period, a watch's habits, and whether
        the home is in use."""
        gap = (reading.ts - state.last_ts).total_seconds()
        if gap > 0 and reading.channel is DeviceChannel.TELEMETRY:
            if state.interval_s is None:
                state.interval_s = gap
            elif gap <= OUTAGE_GAPS * state.interval_s:
                state.interval_s += INTERVAL_WEIGHT * (gap - state.interval_s)
            self._learn_upload(state, reading.ts)
            if state.kind is DeviceKind.WEARABLE:
                _learn_habit(state, reading.ts)
        if reading.worn is not None:
            state.worn = reading.worn
        used = reading.gas_volume_m3 is not None and state.volume is not None and reading.gas_volume_m3 > state.volume
        if reading.water_volume_l is not None and state.volume is not None and gap > 0:
            used = reading.water_volume_l - state.volume >= self.config.home_use_l + self.config.leak_l_min * gap / 60
        volume = reading.water_volume_l if reading.water_volume_l is not None else reading.gas_volume_m3
        if volume is not None and (gap > 0 or state.volume is None):
            state.volume = volume
        if volume is not None:
            seen = self.home_use.setdefault(state.home_id, NEVER)
            if used:
                self.home_use[state.home_id] = max(seen, reading.ts)
        state.last_ts = max(state.last_ts, reading.ts)
        state.offline_reported = False

    def _learn_upload(self, state: DeviceState, ts: datetime) -> None:
        """A meter that uploads its buffer every few hours looks silent that long: learn how long it usually does."""
        first_of_batch = state.heard_at is None or self.clock is None or self.clock > state.heard_at
        state.heard_at = self.clock
        if first_of_batch and self.clock is not None:
            state.upload_s = learn_upload(state.upload_s, state.interval_s, state.last_ts, ts, self.clock)

    def apply(self, feedback: Feedback) -> None:
        """Emergencies need no learning and are never muted, so operator feedback changes nothing here."""

    def _gas(self, reading: Reading, state: DeviceState) -> list[Finding]:
        assert reading.ch4_lel_pct is not None
        threshold = self.config.gas_alarm_lel_pct
        if reading.ch4_lel_pct < threshold:
            state.open_episodes.discard(FindingCode.GAS_ALARM)
            return []
        if not _opens(state, FindingCode.GAS_ALARM):
            return []
        return [
            self._finding(
                reading,
                FindingCode.GAS_ALARM,
                Severity.CRITICAL,
                f"Methane at {reading.ch4_lel_pct:.0f} % LEL (alarm level {threshold:.0f} % LEL)",
                reading.ts,
                evidence_of(ch4_lel_pct=reading.ch4_lel_pct, alarm_lel_pct=threshold),
            )
        ]

    def _co(self, reading: Reading, state: DeviceState) -> list[Finding]:
        """CO alarm after EN 50291-1: the higher the level, the shorter it must last."""
        assert reading.co_ppm is not None
        ppm = reading.co_ppm
        for level, _minutes in self.config.co_alarm_levels:
            if ppm >= level:
                state.co_since.setdefault(level, reading.ts)
            else:
                state.co_since.pop(level, None)
        if not state.co_since:
            state.open_episodes.discard(FindingCode.CO_ALARM)
            return []
        if FindingCode.CO_ALARM in state.open_episodes:
            return []
        for level, minutes in self.config.co_alarm_levels:
            since = state.co_since.get(level)
            if since is not None and reading.ts - since >= timedelta(minutes=minutes):
                state.open_episodes.add(FindingCode.CO_ALARM)
                return [
                    self._finding(
                        reading,
                        FindingCode.CO_ALARM,
                        Severity.CRITICAL,
                        f"Carbon monoxide at {ppm:.0f} ppm (>= {level:.0f} ppm for {minutes:.0f} min)",
                        since,
                        evidence_of(co_ppm=ppm, level_ppm=level, sustained_min=minutes),
                    )
                ]
        return []

    def _offline(self, now: datetime) -> list[Finding]:
        findings = []
        for device_id, state in self.devices.items():
            if state.offline_reported or now - state.last_ts < self._limit(state, now):
                continue
            state.offline_reported = True
            minutes = (now - state.last_ts).total_seconds() / 60
            usual = None if state.interval_s is None else round(state.interval_s / 60, 1)
            summary = f"The {state.kind.value.replace('_', ' ')} has sent nothing for {duration(minutes)}"
            if usual is not None:
                summary += f" (it usually reports every {duration(max(1.0, usual))})"
            findings.append(
                Finding(
                    id=f"{device_id}:device_offline:{state.last_ts.isoformat()}",
                    home_id=state.home_id,
                    device_id=device_id,
                    code=FindingCode.DEVICE_OFFLINE,
                    severity=Severity.MEDIUM,
                    ts=state.last_ts,
                    detected_at=now,
                    summary=summary,
                    evidence=evidence_of(
                        device_kind=state.kind.value, silent_min=round(minutes), usual_interval_min=usual
                    ),
                    technical=True,
                )
            )
        return findings

    def _limit(self, state: DeviceState, now: datetime) -> timedelta:
        """How long this device may be silent: several of its own intervals, longer for a watch with a reason to be."""
        cfg = self.config
        limit = max(cfg.offline_after, timedelta(seconds=cfg.overdue_intervals * (state.interval_s or 0.0)))
        if state.upload_s is not None:
            limit = max(limit, timedelta(seconds=1.25 * state.upload_s))
        if state.kind is not DeviceKind.WEARABLE:
            return limit
        used = self.home_use.get(state.home_id)  # None: no meter to tell whether the resident is in
        out = used is not None and (used <= state.last_ts or now - used < BACK_GRACE)
        if out:
            return max(limit, cfg.out_silence)
        if state.worn is False or _habitual(state, now):
            return max(limit, cfg.known_silence)
        return limit

    def _finding(
        self,
        reading: Reading,
        code: FindingCode,
        severity: Severity,
        summary: str,
        onset: datetime,
        evidence: dict[str, str | int | float | bool | None],
    ) -> Finding:
        return Finding(
            id=f"{reading.device_id}:{code.value}:{onset.isoformat()}",
            home_id=reading.home_id,
            device_id=reading.device_id,
            code=code,
            severity=severity,
            ts=onset,
            detected_at=max(reading.ts, self.clock or reading.ts),
            summary=summary,
            evidence=evidence,
            received_at=reading.received_at,
        )


def _half_hour(ts: datetime) -> int:
    return ts.hour * 2 + ts.minute // 30


def _half_hours(start: datetime, end: datetime) -> set[int]:
    """The half hours of the day (UTC) a silence from ``start`` to ``end`` went through."""
    minutes = int((end - start).total_seconds() // 60)
    return {_half_hour(start + timedelta(minutes=m)) for m in range(0, minutes, 30)}


def _learn_habit(state: DeviceState, ts: datetime) -> None:
    """Count the half hours of a silence of 30 min or more that has just ended, and the days seen."""
    if state.silent_bins is None:
        state.silent_bins = array("f", bytes(4 * HALF_HOURS))
    bins = state.silent_bins
    day = ts.toordinal()
    if day != state.day:
        state.day = day
        state.days = state.days * HABIT_DECAY + 1
        for i in range(HALF_HOURS):
            bins[i] *= HABIT_DECAY
    if ts - state.last_ts < timedelta(minutes=30) or ts - state.last_ts > timedelta(days=1):
        return
    seen = _half_hours(state.last_ts, ts)
    for b in seen:
        bins[b] += 1


def _habitual(state: DeviceState, now: datetime) -> bool:
    """This watch is usually silent through these half hours (off at night, on the charger) and still is now."""
    bins = state.silent_bins
    if bins is None or state.days < HABIT_DAYS:
        return True  # its habits are not known yet: a watch is not called broken in its first days
    span = _half_hours(state.last_ts, now)
    share = sum(bins[b] for b in span) / len(span) / state.days if span else 0.0
    return share >= HABIT_SHARE and bins[_half_hour(now)] / state.days >= HABIT_NOW


def _opens(state: DeviceState, code: FindingCode) -> bool:
    """Start an episode of this cause; False if one is already open (no second finding)."""
    if code in state.open_episodes:
        return False
    state.open_episodes.add(code)
    return True
