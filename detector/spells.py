"""Pure core of the inactivity pattern: how long quiet spells last at each time of day, on a 5-minute grid.

A discrete-time hazard model: for each half hour of the day and each age of the current spell,
how often activity resumed within the next tick. The survival of the current spell under that
model is the probability that a normal spell lasts this long; a calibration layer checks it
against how often this home's own completed spells got that improbable, and only ever raises it.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from datetime import UTC, datetime, timedelta, tzinfo

TICK = timedelta(minutes=5)
TICK_MIN = 5.0
BINS_PER_DAY = 48
AGE_EDGES_MIN = (10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)
AGES = len(AGE_EDGES_MIN) + 1
CALIBRATION_LEVELS = 8
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def tod_bin(ts: datetime, tz: tzinfo) -> int:
    local = ts.astimezone(tz)
    return local.hour * 2 + local.minute // 30


def grid_after(ts: datetime) -> datetime:
    """The first grid point strictly after ``ts``."""
    ticks = (ts - EPOCH) // TICK
    return EPOCH + (ticks + 1) * TICK


def _prior_hazard(tod: int, age: int, scale: float = 1.0) -> float:
    """Population prior: low chance of activity at night, modest by day; low means slow to alarm.

    Bedtimes and rising times vary by hours between people (long sleepers), so the evening and the
    early morning lean towards the night; ``scale`` < 1 for sparse channels (water and gas are used
    a dozen times a day, a watch counts steps every few minutes).
    """
    hour = tod / 2
    if hour >= 22 or hour < 6:
        return 0.03 * scale
    day = (0.5, 0.35, 0.25, 0.15, 0.1, 0.06, 0.04, 0.03)[age] * scale
    return min(day, 0.06 * scale) if hour >= 20 or hour < 8 else day


class GapModel:
    """How long quiet spells last at each time of day: learns a hazard per (time of day, age), scores the current spell.

    ``step`` is called once per grid tick with whether activity happened since the previous
    tick. ``probability()`` is the calibrated chance that a normal spell gets as improbable
    as the current one.

    >>> from datetime import datetime, UTC
    >>> from zoneinfo import ZoneInfo
    >>> model = GapModel(ZoneInfo("UTC"))
    >>> t = datetime(2026, 1, 1, 9, tzinfo=UTC)
    >>> for i in range(12 * 24 * 7 + 1):  # a week of activity every other 5 minutes
    ...     model.step(t + i * TICK, active=i % 2 == 0, learn=True)
    >>> model.probability()
    1.0
    >>> for i in range(1, 13):  # then an hour of silence, longer than any spell seen
    ...     model.step(t + (12 * 24 * 7 + i) * TICK, active=False, learn=True)
    >>> round(model.probability(), 3)
    0.004
    """

    def __init__(self, tz: tzinfo, prior_weight: float = 10.0, prior_scale: float = 1.0) -> None:
        self.tz = tz
        self.prior_weight = prior_weight
        self.prior_scale = prior_scale
        self.counts = array("f", bytes(4 * BINS_PER_DAY * AGES * 2))
        self.calibration = array("f", bytes(4 * (CALIBRATION_LEVELS + 1)))
        self.log_s = 0.0
        self.last_activity: datetime | None = None
        self.quiet_ticks = 0
        self.learnable = True
        self._prev: tuple[int, int] | None = None

    def hazard(self, tod: int, age: int) -> float:
        """Chance of activity within the next tick, smoothed over neighbouring half hours.

        Where this home has few spells of this age, the estimate leans on its own hazard at the
        next younger age (never below the population prior), and at the youngest age on the
        population prior: a spell longer than any seen is assumed to end as the longest ones did.
        """
        counts = self.counts
        k = self.prior_weight
        scale = self.prior_scale
        h = _prior_hazard(tod, 0, scale)
        for a in range(age + 1):
            trials = events = 0.0
            for offset, weight in ((0, 1.0), (-1, 0.5), (1, 0.5)):
                i = (((tod + offset) % BINS_PER_DAY) * AGES + a) * 2
                trials += weight * counts[i]
                events += weight * counts[i + 1]
            prior = h if a == 0 else max(_prior_hazard(tod, a, scale), h)
            h = min(0.99, (events + k * prior) / (trials + k))
        return h

    def step(self, now: datetime, active: bool, learn: bool, tod: int | None = None) -> None:
        tod = tod_bin(now, self.tz) if tod is None else tod
        if self._prev is not None:
            ptod, page = self._prev
            if learn and self.learnable:
                i = (ptod * AGES + page) * 2
                self.counts[i] += 1
                if active:
                    self.counts[i + 1] += 1
            if not active:
                self.log_s += math.log1p(-self.hazard(ptod, page))
        if active:
            if self.quiet_ticks and learn and self.learnable:
                self._record_spell()
            self.last_activity = now
            self.log_s = 0.0
            self.quiet_ticks = 0
            self.learnable = True
        elif self.last_activity is not None:
            self.quiet_ticks += 1
        if self.last_activity is None:
            self._prev = None
        else:
            age = (now - self.last_activity).total_seconds() / 60
            self._prev = (tod, bisect_right(AGE_EDGES_MIN, age))

    def hold(self, now: datetime, active: bool) -> None:
        """Some channels this model watches are not reporting: activity still ends the spell, silence does not count.

        The spell's survival is frozen rather than reset, so a watch taken off to charge does
        not hide a collapse that began before; nothing is learned until the channels return.
        """
        if active:
            self.last_activity = now
            self.log_s = 0.0
            self.quiet_ticks = 0
            self.learnable = True
        self._prev = None

    def _record_spell(self) -> None:
        cal = self.calibration
        cal[0] += 1
        reached = min(CALIBRATION_LEVELS, int(-self.log_s / math.log(10)))
        for level in range(1, reached + 1):
            cal[level] += 1

    def survival(self) -> float:
        return math.exp(self.log_s)

    def probability(self) -> float:
        """Survival of the current spell, raised if this home's spells reached such levels more often than expected."""
        s = self.survival()
        if s >= 0.1:
            return s
        level = min(CALIBRATION_LEVELS, int(-math.log10(s)))
        expected = self.calibration[0] * 10.0**-level
        observed = self.calibration[level]
        return min(1.0, s * max(1.0, (observed + 1) / (expected + 1)))

    def decay(self, factor: float) -> None:
        for arr in (self.counts, self.calibration):
            for i in range(len(arr)):
                arr[i] *= factor
