"""Pure core of escalation: policies, the plan copied onto an alert, and its state machine.

A policy names its targets by role ("responder:0" = the first responder in call order, a
relation such as "neighbour", or "operator"). When escalation starts the policy is resolved
against the home's responders into a ``Plan`` that is stored on the alert, so a later edit of
the policy or the registry does not change an alert in flight.

``advance(plan, state, now, event)`` is the only way the state changes. It does no I/O: it
returns the new state and the actions (notify, page operators, cancel queued messages) that
the adapter carries out in the same transaction that stores the state, so a restart resumes
exactly where it stopped. Every event is idempotent: a repeated key press, status callback
or tick changes nothing the second time.

Only a key press or a reply acknowledges: a call that ended "completed" without a key press
(voicemail, hung up) counts as not answered, like busy or no-answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from carebed.schemas import TECHNICAL_CODES, FindingCode, Severity


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"


class Phase(StrEnum):
    PENDING = "pending"
    NOTIFYING = "notifying"
    ACKNOWLEDGED = "acknowledged"
    ARRIVED = "arrived"
    EXHAUSTED = "exhausted"
    CLOSED = "closed"


OPERATOR = "operator"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Step(_Frozen):
    """Notify these targets on these channels, then wait this long for an acknowledgement."""

    targets: tuple[str, ...] = Field(min_length=1)
    channels: tuple[Channel, ...] = (Channel.SMS, Channel.VOICE)
    wait_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class Policy(_Frozen):
    steps: tuple[Step, ...] = Field(min_length=1)
    rounds: Annotated[int, Field(ge=1, le=10)] = 2
    arrival_s: Annotated[float, Field(gt=0, le=24 * 3600)] = 1800.0
    page_operators_at_start: bool = False
    respect_quiet_hours: bool = Field(True, description="Skip responders in their quiet hours (not for critical).")


def _default(wait_s: float, rounds: int, page: bool, channels: tuple[Channel, ...]) -> Policy:
    return Policy(
        steps=(
            Step(targets=("responder:0",), channels=channels, wait_s=wait_s),
            Step(targets=("responder:1",), channels=channels, wait_s=wait_s),
            Step(targets=("responder:2", "responder:3", OPERATOR), channels=channels, wait_s=wait_s),
        ),
        rounds=rounds,
        page_operators_at_start=page,
        respect_quiet_hours=not page,
    )


_VOICE_AND_SMS = (Channel.SMS, Channel.VOICE)
DEFAULT_POLICIES: dict[Severity, Policy] = {
    Severity.CRITICAL: _default(60.0, 3, True, _VOICE_AND_SMS),
    Severity.HIGH: _default(120.0, 2, False, _VOICE_AND_SMS),
    Severity.MEDIUM: _default(600.0, 1, False, (Channel.SMS,)),
    Severity.LOW: _default(1800.0, 1, False, (Channel.SMS,)),
}

# A technical finding (a device, not the resident) goes to the operators' queue only: no family SMS or call,
# whatever the home's own policy for that severity says.
TECHNICAL_POLICY = Policy(
    steps=(Step(targets=(OPERATOR,), channels=(Channel.SMS,), wait_s=1800.0),), rounds=1, respect_quiet_hours=True
)


def policy_for(code: FindingCode, severity: Severity, home_policy: Policy | None) -> Policy:
    """The policy an alert escalates by: technical causes by the technician's, others by the home's or the default."""
    if code in TECHNICAL_CODES:
        return TECHNICAL_POLICY
    return home_policy or DEFAULT_POLICIES[severity]


class Contact(_Frozen):
    """A responder as the registry has it when escalation starts; the plan keeps this copy."""

    id: int
    position: int
    relation: str
    phone: str
    language: str
    quiet_hours: str | None = None

    def quiet_at(self, local: datetime) -> bool:
        """Whether local time falls in the quiet span, which may run past midnight."""
        if self.quiet_hours is None:
            return False
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in self.quiet_hours.split("-"))
        minute = local.hour * 60 + local.minute
        return start <= minute < end if start <= end else (minute >= start or minute < end)


class PlanStep(_Frozen):
    responders: tuple[int, ...]
    operators: bool
    channels: tuple[Channel, ...]
    wait_s: float


class Plan(_Frozen):
    """The policy resolved against the home's responders: what this alert will do, fixed at its start."""

    steps: tuple[PlanStep, ...]
    contacts: dict[int, Contact]
    rounds: int
    arrival_s: float
    page_operators_at_start: bool
    quiet_hours_in: str | None = Field(None, description="Time zone of quiet hours; None if they do not apply.")


def make_plan(
    policy: Policy, contacts: Sequence[Contact], time_scale: float = 1.0, timezone: str = "Asia/Shanghai"
) -> Plan:
    """Resolve targets to responder ids; steps with nobody to reach are dropped. ``time_scale`` shortens drills."""
    steps = []
    for step in policy.steps:
        ids: list[int] = []
        for target in step.targets:
            for contact in contacts:
                if _matches(target, contact) and contact.id not in ids:
                    ids.append(contact.id)
        operators = OPERATOR in step.targets
        if ids or operators:
            steps.append(
                PlanStep(
                    responders=tuple(ids), operators=operators, channels=step.channels, wait_s=step.wait_s * time_scale
                )
            )
    return Plan(
        steps=tuple(steps),
        contacts={c.id: c for c in contacts},
        rounds=policy.rounds,
        arrival_s=policy.arrival_s * time_scale,
        page_operators_at_start=policy.page_operators_at_start,
        quiet_hours_in=timezone if policy.respect_quiet_hours else None,
    )


def _matches(target: str, contact: Contact) -> bool:
    if target.startswith("responder:"):
        return target == f"responder:{contact.position}"
    return target == contact.relation


class State(_Frozen):
    phase: Phase = Phase.PENDING
    round: int = 0
    step: int = 0
    deadline: datetime | None = None
    notified: dict[int, tuple[Channel, ...]] = Field(default_factory=dict, description="Current step, by responder.")
    ended: dict[int, tuple[Channel, ...]] = Field(default_factory=dict, description="Channels that ended unanswered.")
    passed: tuple[int, ...] = ()
    failed: tuple[tuple[int, Channel], ...] = Field((), description="Channels that failed for good: never again.")
    acked_by: int | None = None
    arrival_paged: bool = False


class Start(_Frozen):
    pass


class Tick(_Frozen):
    pass


class Acked(_Frozen):
    responder: int | None = Field(None, description="None when an operator acknowledges.")


class Passed(_Frozen):
    responder: int


class ChannelEnded(_Frozen):
    """A message or call of one step ended without an acknowledgement; ``permanent`` if the number is useless."""

    responder: int
    channel: Channel
    round: int
    step: int
    permanent: bool


class Arrived(_Frozen):
    responder: int | None = None


class Closed(_Frozen):
    pass


Event = Start | Tick | Acked | Passed | ChannelEnded | Arrived | Closed


class Notify(_Frozen):
    responder: int
    channel: Channel
    round: int
    step: int


class PageOperators(_Frozen):
    reason: str


class CancelQueued(_Frozen):
    """Drop messages of this alert that are still waiting in the outbox."""


class Moved(_Frozen):
    """The escalation went to another step; recorded in the audit log."""

    round: int
    step: int
    reason: str
    quiet: tuple[int, ...] = Field((), description="Responders of this step left alone in their quiet hours.")


Action = Notify | PageOperators | CancelQueued | Moved
Result = tuple[State, list[Action]]

_WAITING_FOR_ACK = (Phase.PENDING, Phase.NOTIFYING, Phase.EXHAUSTED)


def advance(plan: Plan, state: State, now: datetime, event: Event) -> Result:
    """The one transition function; see the module docstring."""
    if state.phase == Phase.CLOSED:
        return state, []
    match event:
        case Start():
            if state.phase != Phase.PENDING:
                return state, []
            first: list[Action] = [PageOperators(reason="critical")] if plan.page_operators_at_start else []
            return _enter(plan, state, 0, 0, now, first, "start")
        case Tick():
            return _tick(plan, state, now)
        case Acked(responder=responder):
            if state.phase not in _WAITING_FOR_ACK:
                return state, []
            acked = state.model_copy(
                update={
                    "phase": Phase.ACKNOWLEDGED,
                    "acked_by": responder,
                    "deadline": now + timedelta(seconds=plan.arrival_s),
                }
            )
            return acked, [CancelQueued()]
        case Arrived():
            if state.phase not in (*_WAITING_FOR_ACK, Phase.ACKNOWLEDGED):
                return state, []
            actions: list[Action] = [] if state.phase == Phase.ACKNOWLEDGED else [CancelQueued()]
            return state.model_copy(update={"phase": Phase.ARRIVED, "deadline": None}), actions
        case Closed():
            return state.model_copy(update={"phase": Phase.CLOSED, "deadline": None}), [CancelQueued()]
        case Passed(responder=responder):
            if state.phase != Phase.NOTIFYING or responder not in state.notified or responder in state.passed:
                return state, []
            return _settle(plan, state.model_copy(update={"passed": (*state.passed, responder)}), now, "passed")
        case ChannelEnded():
            return _channel_ended(plan, state, now, event)
    raise AssertionError(f"unknown event {event!r}")


def bounded(plan: Plan, state: State, now: datetime) -> State:
    """The state with its deadline no further from ``now`` than its phase could have set it.

    A deadline further ahead was set before the wall clock was stepped back while the service was
    down (a running service keeps time on its steady clock): it is brought in to a full wait from
    now, so the step waits at most its own wait rather than the size of the step of the clock.
    """
    if state.deadline is None:
        return state
    if state.phase == Phase.NOTIFYING:
        longest = plan.steps[state.step].wait_s
    elif state.phase == Phase.ACKNOWLEDGED:
        longest = plan.arrival_s
    else:
        return state
    limit = now + timedelta(seconds=longest)
    return state if state.deadline <= limit else state.model_copy(update={"deadline": limit})


def _tick(plan: Plan, state: State, now: datetime) -> Result:
    if state.deadline is None or now < state.deadline:
        return state, []
    if state.phase == Phase.NOTIFYING:
        return _next(plan, state, now, [], "no_ack")
    if state.phase == Phase.ACKNOWLEDGED and not state.arrival_paged:
        overdue = state.model_copy(update={"arrival_paged": True, "deadline": None})
        return overdue, [PageOperators(reason="arrival_overdue")]
    return state, []


def _channel_ended(plan: Plan, state: State, now: datetime, event: ChannelEnded) -> Result:
    failed = state.failed
    if event.permanent and (event.responder, event.channel) not in failed:
        failed = (*failed, (event.responder, event.channel))
    state = state.model_copy(update={"failed": failed})
    current = state.phase == Phase.NOTIFYING and (event.round, event.step) == (state.round, state.step)
    if not current or event.responder not in state.notified or event.channel in state.ended.get(event.responder, ()):
        return state, []
    ended = {**state.ended, event.responder: (*state.ended.get(event.responder, ()), event.channel)}
    return _settle(plan, state.model_copy(update={"ended": ended}), now, "unanswered")


def _settle(plan: Plan, state: State, now: datetime, reason: str) -> Result:
    """Move on at once when nobody of the current step can still answer; operators are not waited for."""
    if plan.steps[state.step].operators or not all(_done(state, r) for r in state.notified):
        return state, []
    return _next(plan, state, now, [], reason)


def _done(state: State, responder: int) -> bool:
    """A responder is out of this step once they passed, their call went unanswered, or every message failed."""
    sent, ended = state.notified[responder], state.ended.get(responder, ())
    if responder in state.passed or (Channel.VOICE in sent and Channel.VOICE in ended):
        return True
    return all(channel in ended for channel in sent)


def _next(plan: Plan, state: State, now: datetime, actions: list[Action], reason: str) -> Result:
    step, round_ = state.step + 1, state.round
    if step >= len(plan.steps):
        step, round_ = 0, round_ + 1
    return _enter(plan, state, round_, step, now, actions, reason)


def _enter(
    plan: Plan, state: State, round_: int, step: int, now: datetime, actions: list[Action], reason: str
) -> Result:
    """Notify the first step from here that can reach someone; skip steps whose every channel has failed."""
    failed = set(state.failed)
    local = now.astimezone(ZoneInfo(plan.quiet_hours_in)) if plan.quiet_hours_in else None
    while round_ < plan.rounds and plan.steps:
        planned = plan.steps[step]
        quiet = tuple(r for r in planned.responders if local and plan.contacts[r].quiet_at(local))
        notified = {
            r: channels
            for r in planned.responders
            if r not in quiet and (channels := tuple(c for c in planned.channels if (r, c) not in failed))
        }
        if notified or planned.operators:
            actions = [*actions, Moved(round=round_, step=step, reason=reason, quiet=quiet)]
            actions += [
                Notify(responder=r, channel=c, round=round_, step=step) for r, cs in notified.items() for c in cs
            ]
            if planned.operators:
                actions.append(PageOperators(reason="escalation_step"))
            entered = state.model_copy(
                update={
                    "phase": Phase.NOTIFYING,
                    "round": round_,
                    "step": step,
                    "deadline": now + timedelta(seconds=planned.wait_s),
                    "notified": notified,
                    "ended": {},
                    "passed": (),
                }
            )
            return entered, actions
        step += 1
        if step >= len(plan.steps):
            step, round_ = 0, round_ + 1
    exhausted = state.model_copy(update={"phase": Phase.EXHAUSTED, "deadline": None, "notified": {}, "ended": {}})
    return exhausted, [*actions, PageOperators(reason="nobody_answered")]


class Reply(StrEnum):
    ACCEPT = "accept"
    PASS = "pass"
    ARRIVED = "arrived"
    RESOLVED = "resolved"


REPLIES: dict[str, Reply] = {
    **dict.fromkeys(("1", "ok", "yes", "y", "收到", "好", "好的", "接受"), Reply.ACCEPT),
    **dict.fromkeys(("2", "no", "pass", "不行", "转"), Reply.PASS),
    **dict.fromkeys(("3", "arrived", "here", "到", "到了", "已到", "已到达"), Reply.ARRIVED),
    **dict.fromkeys(("9", "done", "resolved", "解决", "已解决", "已处理"), Reply.RESOLVED),
}


def parse_reply(body: str) -> tuple[Reply, int | None] | None:
    """A reply code, optionally followed by an alert number ("1 #42"); None if it is not one."""
    words = body.strip().lower().replace("#", " ").replace("＃", " ").split()
    if not words or words[0].strip("。.!！") not in REPLIES:
        return None
    reply = REPLIES[words[0].strip("。.!！")]
    alert_id = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    return reply, alert_id
