"""Pure core of the learned living patterns: one home's state, judged on a 5-minute grid of event time.

`HomePatterns` holds a home's shared state (which devices report, the last activity, days
learned, away periods, operator feedback) and runs one pattern per concern over it:

* inactivity: quiet spells under a hazard model of this home (`detector/spells.py`), a late
  morning, and the fixed floors (the deployed "< 10 L of water in 12 h" rule among them);
* flows: what each meter says (`detector/meters.py`: use, trickles, coarse totals, appliances on
  a timer) and flows far longer than this home's;
* night: steps, or water and gas use while the watch is off, in the person's deep night
  (`detector/night.py`);
* decline: days much less active than this home's usual ones (`detector/decline.py`).

Everything is a few arrays of float32 and a handful of running statistics, so a home's state
pickles to a few KB. Because the grid and every decision depend only on device timestamps, a
replay at any speed, split anywhere by a pickled checkpoint, gives the same findings as a live run.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from river import stats

from carebed.schemas import (
    DeviceKind,
    Feedback,
    FeedbackKind,
    Finding,
    FindingCode,
    Reading,
    Severity,
    evidence_of,
)
from detector.decline import SHARE as DECLINE_SHARE
from detector.decline import DailyTotals, Decline
from detector.meters import COARSE_MIN, FLOW_BINS, FLOW_PRIOR, Interval, Meter, flow_tail
from detector.night import NightWatch
from detector.spells import EPOCH, TICK, TICK_MIN, GapModel, grid_after, tod_bin
from detector.wording import duration

WINDOW_TICKS = 12
DEEP_NIGHT_RATE = 0.05
WAKE_SD_FLOOR_MIN = 20.0
RISING_FROM_NOON = (14 * 60, 24 * 60)  # 02:00 to 12:00: a stir in the evening is not getting up
FOREVER = datetime.max.replace(tzinfo=UTC)
FIXTURE_PRIOR_SCALE = 0.3
WATER_OUTAGE = timedelta(hours=2)
FLOOR_TICKS = 144  # the fixed water rule's 12 hours, in 5-minute ticks
SCHEDULE_GRACE_MIN = 20.0
TRICKLE_LEARNED = timedelta(hours=12)  # a trickle is seen only once a 12-hour block of it has passed


@dataclass(frozen=True, slots=True)
class PatternConfig:
    """Knobs of the learned layer; the alphas are per-opportunity false-alarm probabilities."""

    tz: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    cold_start_days: int = 7
    inactivity_alpha: float = 1 / 2000
    late_morning_alpha: float = 0.001
    flow_false_per_month: float = 0.1
    wander_alpha: float = 0.002
    floor_silence: timedelta = timedelta(hours=12)
    floor_water_l: float = 10.0
    floor_other_quiet: timedelta = timedelta(hours=1)
    # Above 0, once learned, the floors hold off while at least this share of the home's normal quiet spells get
    # this long, never past floor_always (0: the floors are the fixed rules exactly; CAREBED_FLOOR_VETO_P).
    floor_veto_p: float = 0.0
    floor_always: timedelta = timedelta(hours=18)
    floor_flow: timedelta = timedelta(hours=2)
    floor_flow_night: timedelta = timedelta(hours=1)
    device_stale: timedelta = timedelta(minutes=15)
    daily_decay: float = 0.98
    prior_weight: float = 10.0


def _clock(ts: datetime, tz: tzinfo) -> str:
    return ts.astimezone(tz).strftime("%H:%M")


def _one_in(p: float) -> int:
    """1/p rounded to two significant figures, for readable evidence."""
    n = 1 / max(p, 1e-12)
    digits = max(0, int(math.log10(n)) - 1)
    return int(round(n, -digits))


def _minute_from_noon(ts: datetime, tz: tzinfo) -> int:
    """Minutes since the previous local noon, so that rising times after midnight stay in order."""
    local = ts.astimezone(tz)
    return (local.hour * 60 + local.minute - 720) % 1440


def _significant(p: float) -> float:
    """Two significant figures: evidence rounding to 0.01 would turn every alarm's probability into 0."""
    return float(f"{p:.2g}")


def _slot(tick: datetime) -> int:
    """The fixed water rule's ring slot of the 5-minute tick ending at ``tick``."""
    return ((tick - EPOCH) // TICK) % FLOOR_TICKS


class HomePatterns:
    """One home's learned baselines and open situations; the whole object is the home's checkpointed state."""

    def __init__(self, home_id: str, config: PatternConfig) -> None:
        self.home_id = home_id
        self.config = config
        self.any = GapModel(config.tz, config.prior_weight)
        self.fixtures = GapModel(config.tz, config.prior_weight, FIXTURE_PRIOR_SCALE)
        self.meters = {k: Meter(k) for k in (DeviceKind.WATER_METER, DeviceKind.GAS_SENSOR)}
        self.water_ring = array("f", bytes(4 * FLOOR_TICKS))  # litres by the device time they were used
        self.water_since: datetime | None = None
        self.water_floor_alerted = False
        self.last_other: datetime | None = None
        self.walking = NightWatch(min_ticks=5)
        self.using = NightWatch(min_ticks=3)
        self.daily = DailyTotals()
        self.wake_mean = stats.EWMean(fading_factor=0.1)
        self.wake_var = stats.EWVar(fading_factor=0.1)
        self.wake_days = 0
        self.awaiting_wake = False
        self.quiet_since_night = False
        self.active_mask = 0
        self.sensitivity: dict[FindingCode, float] = {}
        self.next_tick: datetime | None = None
        self.last_seen: dict[DeviceKind, datetime] = {}
        self.offline: set[DeviceKind] = set()
        self.worn = True
        self.last_steps: int | None = None
        self.pending_steps = False
        self.pending_fixtures = False
        self.last_any: datetime | None = None
        self.last_fixture_use: datetime | None = None
        self.silence_alerted = False
        self.day_date: str | None = None
        self.day_ticks = 0
        self.day_active = 0
        self.day_use = [0.0, 0.0, 0.0]  # steps, litres of water, m³ of gas today
        self.learned_days = 0
        self.away_until: datetime | None = None
        self.was_away = False

    def process(self, reading: Reading) -> list[Finding]:
        findings = self.advance(reading.ts)
        kind = reading.device_kind
        ts = reading.ts
        seen = self.last_seen.get(kind)
        if seen is None or ts > seen:
            self.last_seen[kind] = ts
        if reading.online is False:
            self.offline.add(kind)
        else:
            self.offline.discard(kind)
        if kind is DeviceKind.WEARABLE:
            if reading.worn is not None:
                self.worn = reading.worn
            if reading.steps is not None:
                if self.last_steps is not None and reading.steps > self.last_steps:
                    self.day_use[0] += reading.steps - self.last_steps
                    self._activity(ts)
                self.last_steps = reading.steps
        elif kind is DeviceKind.WATER_METER:
            findings += self._meter(reading, reading.water_volume_l, reading.water_flow_l_min)
        elif kind is DeviceKind.GAS_SENSOR:
            findings += self._meter(reading, reading.gas_volume_m3, reading.gas_flow_m3_h)
        return findings

    def apply(self, feedback: Feedback) -> None:
        """Away and back set the away window; a false alarm makes this home less sensitive for that cause."""
        if feedback.kind is FeedbackKind.AWAY:
            self.away_until = feedback.until or FOREVER
        elif feedback.kind is FeedbackKind.BACK:
            self.away_until = None
        elif feedback.code is not None:
            self.sensitivity[feedback.code] = max(1e-3, self.sensitivity.get(feedback.code, 1.0) * 0.3)

    def advance(self, now: datetime) -> list[Finding]:
        """Evaluate every grid point strictly before ``now``."""
        if self.next_tick is None:
            self.next_tick = grid_after(now)
            return []
        findings: list[Finding] = []
        while self.next_tick < now:
            findings.extend(self._tick(self.next_tick))
            self.next_tick += TICK
            self.water_ring[_slot(self.next_tick)] = 0.0  # the tick 12 h ago leaves the rule's window
        return findings

    def _activity(self, ts: datetime, kind: DeviceKind | None = None) -> None:
        """A sign of the resident; ``kind`` None for steps. Water is kept apart for the fixed water rule."""
        if kind is None:
            self.pending_steps = True
        else:
            self.pending_fixtures = True
            if self.last_fixture_use is None or ts > self.last_fixture_use:
                self.last_fixture_use = ts
        if kind is not DeviceKind.WATER_METER and (self.last_other is None or ts > self.last_other):
            self.last_other = ts
        if self.last_any is None or ts > self.last_any:
            self.last_any = ts

    def _meter(self, reading: Reading, volume: float | None, flow: float | None) -> list[Finding]:
        """Use above the trickle is activity, unless it is a scheduled appliance's usual run; every litre counts
        for the fixed water rule."""
        meter = self.meters[reading.device_kind]
        meter.device_id = reading.device_id
        ts = reading.ts
        if self.next_tick is not None:
            meter.arrived(ts, self.next_tick)
        interval = meter.read(ts, volume, flow)
        if reading.device_kind is DeviceKind.WATER_METER:
            # Counted at its device time, as the rule counts it: a batch uploaded late fills its own hours.
            if self.next_tick is not None and self.next_tick - ts <= self.config.floor_silence:
                self.water_ring[_slot(grid_after(ts - timedelta(microseconds=1)))] += interval.used  # its tick
            self.water_since = self.water_since or ts
        self._flow(meter, ts, interval)
        scheduled = meter.start is not None and meter.scheduled_min is not None and not self._overran(meter, ts)
        if (interval.use or interval.running) and not scheduled:
            self.day_use[1 if reading.device_kind is DeviceKind.WATER_METER else 2] += interval.excess
            self._activity(ts, reading.device_kind)
        if meter.leaking(ts):
            return [self._leak(meter, ts)]
        return []

    def _flow(self, meter: Meter, ts: datetime, interval: Interval) -> None:
        """Open, extend or close the meter's flow episode; a coarse interval's flow may have begun at its start."""
        if interval.running:
            if meter.start is None:
                meter.start = meter.prev_ts or ts
                meter.start_night = self._is_night(tod_bin(meter.start, self.config.tz))
                meter.scheduled_min = meter.schedule(meter.start, self.config.tz)
            meter.last_flowing = ts
        elif meter.start is not None:
            end = meter.last_flowing or ts
            if not meter.alerted and not self._away(ts):
                minutes = (end - meter.start).total_seconds() / 60
                meter.learn_episode(meter.start, self.config.tz, minutes)
            meter.start = meter.scheduled_min = None
            meter.alerted = False
        meter.prev_ts = ts

    @staticmethod
    def _overran(meter: Meter, now: datetime) -> bool:
        """A scheduled flow that runs well past its usual length is no longer the appliance's run."""
        assert meter.start is not None and meter.scheduled_min is not None
        minutes = (now - meter.start).total_seconds() / 60
        return minutes > 1.5 * meter.scheduled_min + SCHEDULE_GRACE_MIN

    def _leak(self, meter: Meter, now: datetime) -> Finding:
        assert meter.leak_since is not None
        rate = meter.trickle()
        since = meter.leak_since - TRICKLE_LEARNED
        text = (
            f"A steady {rate:.2f} L/min has run through the water meter under all use for"
            f" {duration((now - since).total_seconds() / 60)} (a cistern or pipe may be leaking)"
        )
        evidence = evidence_of(trickle_l_min=round(rate, 3), basis="trickle")
        finding = self._finding(FindingCode.POSSIBLE_LEAK, Severity.LOW, since, now, text, evidence)
        return finding.model_copy(update={"device_id": meter.device_id})

    def _returned(self, now: datetime) -> None:
        """Back from an away period: the home's silence while away was not the resident's, so spells start afresh."""
        self.last_any = self.last_fixture_use = now
        self.any.hold(now, active=True)
        self.fixtures.hold(now, active=True)
        self.silence_alerted = self.water_floor_alerted = self.quiet_since_night = False
        self.water_since = now

    def _away(self, now: datetime) -> bool:
        return self.away_until is not None and now < self.away_until

    def _healthy(self, kind: DeviceKind, now: datetime) -> bool:
        """Reporting as it usually does: a meter that reports hourly is not stale after 15 minutes."""
        seen = self.last_seen.get(kind)
        meter = self.meters.get(kind)
        stale = meter.stale_after(self.config.device_stale) if meter else self.config.device_stale
        return seen is not None and kind not in self.offline and now - seen <= stale

    def _step_rate(self, tod: int) -> float:
        """How often this person takes steps in this half hour (prior: rarely from 23:00 to 05:00)."""
        return self.walking.rate(tod, 0.03 if tod >= 46 or tod < 10 else 0.5, 2 * self.config.prior_weight)

    def _is_night(self, tod: int) -> bool:
        """This person's usual sleeping half hours."""
        return self._step_rate(tod) < 0.12

    def _tick(self, now: datetime) -> list[Finding]:
        cfg = self.config
        tod = tod_bin(now, cfg.tz)
        away = self._away(now)
        if self.was_away and not away:
            self._returned(now)
        self.was_away = away
        learn = not away
        self._water_tick(now)
        wearable = self._healthy(DeviceKind.WEARABLE, now) and self.worn
        fixtures = self._healthy(DeviceKind.WATER_METER, now) or self._healthy(DeviceKind.GAS_SENSOR, now)
        steps, fixture_use = self.pending_steps, self.pending_fixtures
        self.pending_steps = self.pending_fixtures = False
        active = steps or fixture_use
        if wearable:
            self.any.step(now, active, learn, tod)
        else:
            self.any.hold(now, active)
        if fixtures:
            self.fixtures.step(now, fixture_use, learn, tod)
        else:
            self.fixtures.hold(now, fixture_use)
        if active:
            self.silence_alerted = False
        self._morning(now, tod, active, learn and (wearable or fixtures))
        findings = self._day(now, active, wearable or fixtures, away)
        if wearable:
            findings.extend(self._wander(self.walking, now, tod, steps, learn, not away))
        if fixtures:
            findings.extend(self._wander(self.using, now, tod, fixture_use, learn, not (away or wearable)))
        if away:
            return findings
        findings.extend(self._inactivity(now, wearable, fixtures))
        for meter in self.meters.values():
            findings.extend(self._long_flow(meter, now))
        return findings

    def _water_tick(self, now: datetime) -> None:
        """The last 12 h of water in 5-minute ticks, as the fixed rule counts it; forgotten when the meter stops."""
        seen = self.last_seen.get(DeviceKind.WATER_METER)
        interval = self.meters[DeviceKind.WATER_METER].stale_after(self.config.device_stale)
        if seen is None or now - seen > max(WATER_OUTAGE, 3 * interval):
            self.water_since = None  # an outage, not a lost report or two: the rule's 12 h start again
        if sum(self.water_ring) >= self.config.floor_water_l:
            self.water_floor_alerted = False

    def _cold(self) -> bool:
        return self.learned_days < self.config.cold_start_days

    def _morning(self, now: datetime, tod: int, active: bool, learn: bool) -> None:
        """Learn when this person gets up: the first of three active slots in half an hour after their night."""
        self.active_mask = ((self.active_mask << 1) | int(active)) & ((1 << WINDOW_TICKS) - 1)
        if self._is_night(tod):
            self.awaiting_wake = self.quiet_since_night = True
            return
        if active:
            self.quiet_since_night = False
        recent = self.active_mask & 0b111111
        if not self.awaiting_wake or recent.bit_count() < 3:
            return
        self.awaiting_wake = False
        minute = _minute_from_noon(now - TICK * (recent.bit_length() - 1), self.config.tz)
        if learn and RISING_FROM_NOON[0] <= minute < RISING_FROM_NOON[1]:
            self.wake_mean.update(minute)
            self.wake_var.update(minute)
            self.wake_days += 1

    def _late_morning(self, now: datetime) -> float:
        """Chance that a normal morning of this person is still quiet by now (normal tail of their rising time)."""
        if (
            not self.quiet_since_night
            or self.wake_days < self.config.cold_start_days
            or self._is_night(tod_bin(now, self.config.tz))
        ):
            return 1.0
        sd = max(WAKE_SD_FLOOR_MIN, math.sqrt(self.wake_var.get()))
        z = (_minute_from_noon(now, self.config.tz) - self.wake_mean.get()) / sd
        return 0.5 * math.erfc(z / math.sqrt(2))

    def _inactivity(self, now: datetime, wearable: bool, fixtures: bool) -> list[Finding]:
        if self.silence_alerted or self.last_any is None or not (wearable or fixtures):
            return []
        cfg = self.config
        model = self.any if wearable else self.fixtures
        sensitivity = self.sensitivity.get(FindingCode.INACTIVITY, 1.0)
        p = model.probability() if model.learnable else 1.0
        late = self._late_morning(now)
        ordinary = model.learnable and not self._cold() and min(p, late) >= cfg.floor_veto_p > 0
        morning = late / cfg.late_morning_alpha < p / cfg.inactivity_alpha
        learned = not self._cold() and (
            p < cfg.inactivity_alpha * sensitivity or late < cfg.late_morning_alpha * sensitivity
        )
        if morning:
            p = late
        onset = self.last_any
        dry = self._under_water_rule(now)
        if not learned and now - onset < cfg.floor_silence and not dry:
            return []
        if not learned and ordinary and now - onset < cfg.floor_always:
            return []  # a spell this long is ordinary for this home at these hours: a long sleeper's night
        self.silence_alerted = True
        self.water_floor_alerted = self.water_floor_alerted or dry
        model.learnable = False
        minutes = (now - onset).total_seconds() / 60
        since = _clock(onset, cfg.tz)
        evidence = evidence_of(
            basis="learned" if learned else "fixed_floor",
            silent_since=since,
            silent_min=round(minutes),
            one_in=_one_in(p) if learned else None,
            channels="wearable, water, gas" if wearable else "water, gas",
        )
        evidence["probability"] = _significant(p) if learned else None
        text = f"No activity since {since} ({duration(minutes)})"
        if self.wake_days and self.quiet_since_night:
            wake = (int(self.wake_mean.get()) + 720) % 1440
            evidence["usually_up_at"] = f"{wake // 60:02d}:{wake % 60:02d}"
            text = f"Usually up at {evidence['usually_up_at']}; nothing since {since} ({duration(minutes)})"
        if learned:
            what = "mornings" if morning else "quiet spells"
            text += f"; about 1 in {_one_in(p):,} {what} under this home's normal pattern"
        else:
            hours = f"{cfg.floor_silence.total_seconds() / 3600:.0f} h"
            text += (
                f"; fixed rule: under {cfg.floor_water_l:g} L of water in {hours}"
                if dry
                else f"; fixed rule: nothing for {hours}"
            )
        return [self._finding(FindingCode.INACTIVITY, Severity.HIGH, onset, now, text, evidence)]

    def _under_water_rule(self, now: datetime) -> bool:
        """The deployed rule, under 10 L of water in 12 h, once per dry spell: carebed is never later than it.

        Unlike the rule it holds off while the wearable or the gas shows the resident active in the last hour,
        which a collapse never does.
        """
        cfg = self.config
        if self.water_floor_alerted or self.water_since is None or now - self.water_since < cfg.floor_silence:
            return False
        if sum(self.water_ring) >= cfg.floor_water_l:
            return False
        return self.last_other is None or now - self.last_other >= cfg.floor_other_quiet

    def _long_flow(self, flow: Meter, now: datetime) -> list[Finding]:
        """A flow far longer than this home's flows; a scheduled appliance's usual run is not judged at all.

        On a coarse meter the flow is known to have lasted only until its last reading, not until now.
        """
        cfg = self.config
        if flow.start is None or flow.alerted or flow.last_flowing is None:
            return []
        if now - flow.last_flowing > flow.stale_after(cfg.device_stale):
            return []
        if flow.scheduled_min is not None and not self._overran(flow, now):
            return []
        coarse = flow.interval_s is not None and flow.interval_s > COARSE_MIN * 60
        minutes = ((flow.last_flowing if coarse else now) - flow.start).total_seconds() / 60
        code = FindingCode.LONG_WATER_FLOW if flow.kind is DeviceKind.WATER_METER else FindingCode.LONG_GAS_FLOW
        night = flow.start_night
        hist = flow.night if night and sum(flow.night) >= 10 else flow.day
        per_month = flow.episodes / max(1, self.learned_days) * 30
        alpha = cfg.flow_false_per_month / max(10.0, per_month) * self.sensitivity.get(code, 1.0)
        if night:
            alpha *= 3
        p = flow_tail(hist, FLOW_PRIOR[flow.kind], cfg.prior_weight, minutes)
        learned = not self._cold() and p < alpha
        # The stricter night floor waits for the home's own nights: an appliance on a timer is learned first.
        floor = cfg.floor_flow_night if night and not self._cold() else cfg.floor_flow
        if not learned and minutes < floor.total_seconds() / 60:
            return []
        flow.alerted = True
        what = "Water" if flow.kind is DeviceKind.WATER_METER else "Gas"
        normal = self._normal_flow_min(hist)
        text = f"{what} has been flowing for {duration(minutes)} since {_clock(flow.start, cfg.tz)}"
        text += f" ({'at night; ' if night else ''}this home's flows rarely pass {normal:.0f} min)"
        evidence = evidence_of(
            basis="learned" if learned else "fixed_floor",
            flowing_min=round(minutes),
            usual_max_min=normal,
            night=night,
            one_in=_one_in(p) if learned else None,
        )
        evidence["probability"] = _significant(p) if learned else None
        return [self._finding(code, Severity.HIGH, flow.start, now, text, evidence)]

    def _normal_flow_min(self, hist: Sequence[float]) -> float:
        """Longest duration that holds 99 % of this home's learned flows."""
        total = sum(hist)
        if total <= 0:
            return 0.0
        running = 0.0
        for i, count in enumerate(hist):
            running += count
            if running >= 0.99 * total:
                return i * TICK_MIN
        return (FLOW_BINS - 1) * TICK_MIN

    def _wander(
        self, watch: NightWatch, now: datetime, tod: int, active: bool, learn: bool, judge: bool
    ) -> list[Finding]:
        """Sustained activity in this person's deep night on one channel, against its own night-time rate."""
        deep = self._step_rate(tod) < DEEP_NIGHT_RATE
        steps = watch is self.walking
        rate = self._step_rate(tod) if steps else watch.rate(tod, 0.02 if deep else 0.1, 2 * self.config.prior_weight)
        alpha = self.config.wander_alpha * self.sensitivity.get(FindingCode.NIGHT_WANDERING, 1.0)
        found = watch.step(tod, active, learn, deep, rate, alpha if judge and not self._cold() else 0.0)
        if found is None:
            return []
        p = found.probability
        onset = now - TICK * found.window_ticks
        minutes = found.active_ticks * TICK_MIN
        what = "Walking at night" if steps else "Water or gas in use at night (the watch is off)"
        text = (
            f"{what} since {_clock(onset, self.config.tz)} ({minutes:.0f} of the last 60 min);"
            f" about 1 in {_one_in(p):,} nights under this person's normal pattern"
        )
        channel = "wearable" if steps else "water, gas"
        evidence = evidence_of(active_min=minutes, window_min=60, one_in=_one_in(p), channels=channel)
        evidence["probability"] = _significant(p)
        return [self._finding(FindingCode.NIGHT_WANDERING, Severity.MEDIUM, onset, now, text, evidence)]

    def _day(self, now: datetime, active: bool, observed: bool, away: bool) -> list[Finding]:
        """Daily totals: count learned days, decay the baselines, and look for a multi-day decline."""
        date = now.astimezone(self.config.tz).date().isoformat()
        findings: list[Finding] = []
        if self.day_date is not None and date != self.day_date:
            findings = self._close_day(now)
        if self.day_date != date:
            self.day_date, self.day_ticks, self.day_active = date, 0, 0
            self.day_use = [0.0, 0.0, 0.0]
        if observed and not away:
            self.day_ticks += 1
            self.day_active += int(active)
        return findings

    def _close_day(self, now: datetime) -> list[Finding]:
        cfg = self.config
        if self.day_ticks < 0.8 * 288:
            return []
        self.learned_days += 1
        for model in (self.any, self.fixtures):
            model.decay(cfg.daily_decay)
        for watch in (self.walking, self.using):
            watch.decay(cfg.daily_decay)
        for meter in self.meters.values():
            meter.new_day(cfg.daily_decay)
        if self._away(now):
            return []
        # An operator's "false alarm" asks for a deeper fall before the next one.
        limit = DECLINE_SHARE * self.sensitivity.get(FindingCode.ACTIVITY_DECLINE, 1.0) ** 0.25
        decline = self.daily.add_day((float(self.day_active), *self.day_use), limit)
        return [] if decline is None else [self._decline(now, decline)]

    def _decline(self, now: datetime, decline: Decline) -> Finding:
        local_midnight = now.astimezone(self.config.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        onset = (local_midnight - timedelta(days=2)).astimezone(UTC)
        p = 1 / (decline.usual_days + 1) ** 2
        text = (
            f"Activity over the last 2 days is {decline.share:.0%} of this home's usual level, lower than on any of"
            f" its last {decline.usual_days} usual days"
        )
        evidence = evidence_of(share_of_usual=round(decline.share, 3), usual_days=decline.usual_days, one_in=_one_in(p))
        evidence["probability"] = _significant(p)
        return self._finding(FindingCode.ACTIVITY_DECLINE, Severity.LOW, onset, now, text, evidence)

    def _finding(
        self,
        code: FindingCode,
        severity: Severity,
        onset: datetime,
        now: datetime,
        summary: str,
        evidence: dict[str, str | int | float | bool | None],
    ) -> Finding:
        onset = onset.astimezone(UTC)
        return Finding(
            id=f"{self.home_id}:{code.value}:{onset.isoformat()}",
            home_id=self.home_id,
            code=code,
            severity=severity,
            ts=onset,
            detected_at=now,
            summary=summary,
            evidence={k: v for k, v in evidence.items() if v is not None},
        )


class PatternEngine:
    """Learned patterns for every home, keyed by home id; its whole state pickles for checkpoints."""

    def __init__(self, config: PatternConfig) -> None:
        self.config = config
        self.homes: dict[str, HomePatterns] = {}

    def home(self, home_id: str) -> HomePatterns:
        home = self.homes.get(home_id)
        if home is None:
            home = self.homes[home_id] = HomePatterns(home_id, self.config)
        return home

    def process(self, reading: Reading) -> list[Finding]:
        return self.home(reading.home_id).process(reading)

    def advance(self, now: datetime) -> list[Finding]:
        findings: list[Finding] = []
        for home in self.homes.values():
            findings.extend(home.advance(now))
        return findings

    def apply(self, feedback: Feedback) -> None:
        self.home(feedback.home_id).apply(feedback)


class SeriesScorer:
    """The inactivity model on one series of activity values (anything > 0 is activity), river style.

    ``score_one`` is how improbable the quiet spell up to ``ts`` is for this time of day, in
    [0, 1] (1 minus the calibrated probability; 0 when the value shows activity); call it
    before ``learn_one`` for an honest, prequential score.

    >>> from datetime import datetime, UTC
    >>> scorer = SeriesScorer(ZoneInfo("UTC"))
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> for i in range(12 * 24 * 7):
    ...     scorer.learn_one(t + i * TICK, 1.0 if i % 3 == 0 else 0.0)
    >>> quiet = t + (12 * 24 * 7 + 24) * TICK
    >>> scorer.score_one(quiet, 0.0) > 0.99
    True
    """

    def __init__(self, tz: tzinfo, prior_weight: float = 10.0) -> None:
        self.model = GapModel(tz, prior_weight)
        self.next_tick: datetime | None = None
        self.pending = False

    def _advance(self, ts: datetime) -> None:
        if self.next_tick is None:
            self.next_tick = grid_after(ts)
            return
        while self.next_tick < ts:
            self.model.step(self.next_tick, self.pending, learn=True)
            self.pending = False
            self.next_tick += TICK

    def score_one(self, ts: datetime, value: float) -> float:
        self._advance(ts)
        if value > 0:
            return 0.0
        return 1.0 - self.model.probability()

    def learn_one(self, ts: datetime, value: float) -> None:
        self._advance(ts)
        if value > 0:
            self.pending = True
