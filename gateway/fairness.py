"""Pure per-sender limits of the gateway: one device's flood cannot take the lane, the dead-letter topic or the disk.

Each sender (a device, or the zigbee2mqtt hub it speaks through) has two token buckets: one for
its events (SOS, fall, leak, tamper) and one for everything else, rejected messages included. A
telemetry or garbage flood therefore never spends the tokens of the same device's SOS; the
event bucket starts full and refills, so a device's first SOS, and its first after a quiet
spell, always pass, and only a stuck button pressing many times a minute is thinned out.

Rejections are counted one by one, but told (logged, published as a dead letter) only for the
first few per sender and reason in each window; the rest of the window is summed in one line.
Time is the caller's monotonic clock, in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

# Above this many senders the least recently heard are forgotten: a forgotten sender starts with full buckets.
MAX_SENDERS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """``burst`` messages at once, then ``rate_per_s`` on average, per key."""

    def __init__(self, rate_per_s: float, burst: float, max_keys: int = MAX_SENDERS) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        self._buckets[key] = bucket  # most recently heard last
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


class Fairness:
    """Whether a sender is within its share, for its events and for the rest apart."""

    def __init__(self, rate_per_s: float, burst: int, event_rate_per_s: float, event_burst: int) -> None:
        self.routine = TokenBuckets(rate_per_s, burst)
        self.events = TokenBuckets(event_rate_per_s, event_burst)

    def admit(self, sender: str, event: bool, now: float) -> bool:
        return (self.events if event else self.routine).take(sender, now)


@dataclass(slots=True)
class _Window:
    start: float
    count: int


@dataclass(frozen=True, slots=True)
class Told:
    """What to say of one rejection: ``tell`` it in full; ``silenced`` is true for the first one that is not;
    ``untold`` is how many went untold in the same sender's and reason's previous window."""

    tell: bool
    silenced: bool
    untold: int


class RejectionSampler:
    def __init__(self, per_window: int, window_s: float = 60.0, max_keys: int = MAX_SENDERS) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.max_keys = max_keys
        self._windows: dict[tuple[str, str], _Window] = {}

    def note(self, sender: str, reason: str, now: float) -> Told:
        key = (sender, reason)
        window = self._windows.pop(key, None)
        untold = 0
        if window is None or now - window.start >= self.window_s:
            untold = max(0, window.count - self.per_window) if window is not None else 0
            window = _Window(now, 0)
        window.count += 1
        self._windows[key] = window
        if len(self._windows) > self.max_keys:
            del self._windows[next(iter(self._windows))]
        return Told(window.count <= self.per_window, window.count == self.per_window + 1, untold)
