"""The escalation state machine in policy time: a controllable clock, no I/O, no waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alerting import escalation as esc
from alerting.escalation import Channel, Phase
from alerting.twilio_codes import Verdict, classify_error, classify_status
from carebed.schemas import FindingCode, Severity

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
CONTACTS = [
    esc.Contact(id=11, position=0, relation="family", phone="+8613800138000", language="zh-CN"),
    esc.Contact(id=12, position=1, relation="neighbour", phone="+8613800138001", language="zh-CN"),
    esc.Contact(id=13, position=2, relation="community_worker", phone="+8613800138002", language="en"),
]
CRITICAL = esc.make_plan(esc.DEFAULT_POLICIES[Severity.CRITICAL], CONTACTS)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(plan: esc.Plan, *timed: tuple[float, esc.Event]) -> tuple[esc.State, list[tuple[float, esc.Action]]]:
    state, log = esc.State(), []
    for t, event in timed:
        state, actions = esc.advance(plan, state, at(t), event)
        log += [(t, a) for a in actions]
    return state, log


def notified(log: list[tuple[float, esc.Action]]) -> list[tuple[float, int, str]]:
    return [(t, a.responder, a.channel.value) for t, a in log if isinstance(a, esc.Notify)]


def test_sos_at_t0_calls_and_texts_step_one_and_pages_operators_at_once() -> None:
    state, log = run(CRITICAL, (0, esc.Start()))
    assert notified(log) == [(0, 11, "sms"), (0, 11, "voice")]
    assert esc.PageOperators(reason="critical") in [a for _, a in log]
    assert (state.phase, state.deadline) == (Phase.NOTIFYING, at(60))


def test_press_1_stops_every_further_call() -> None:
    events: list[tuple[float, esc.Event]] = [(0, esc.Start()), (20, esc.Acked(responder=11))]
    events += [(t, esc.Tick()) for t in range(30, 4000, 30)]
    events += [(100, esc.ChannelEnded(responder=11, channel=Channel.VOICE, round=0, step=0, permanent=False))]
    state, log = run(CRITICAL, *events)
    assert [n for n in notified(log) if n[0] > 0] == []
    assert state.phase == Phase.ACKNOWLEDGED and state.acked_by == 11
    assert esc.CancelQueued() in [a for t, a in log if t == 20]


def test_without_a_key_press_step_two_follows_after_the_wait() -> None:
    _, log = run(CRITICAL, (0, esc.Start()), (59.9, esc.Tick()), (60, esc.Tick()), (60.5, esc.Tick()))
    assert notified(log) == [(0, 11, "sms"), (0, 11, "voice"), (60, 12, "sms"), (60, 12, "voice")]


def test_a_voicemail_or_unanswered_call_moves_on_at_once_but_a_delivered_sms_does_not() -> None:
    state, _log = run(CRITICAL, (0, esc.Start()))
    assert classify_status("delivered") == Verdict.DELIVERED  # only UNANSWERED/PERMANENT end a channel
    ended = esc.ChannelEnded(responder=11, channel=Channel.VOICE, round=0, step=0, permanent=False)
    assert classify_status("completed") == Verdict.UNANSWERED  # voicemail: Twilio says "completed"
    state, actions = esc.advance(CRITICAL, state, at(25), ended)
    assert [(a.responder, a.channel) for a in actions if isinstance(a, esc.Notify)] == [
        (12, Channel.SMS),
        (12, Channel.VOICE),
    ]
    again, repeated = esc.advance(CRITICAL, state, at(26), ended)
    assert (again, repeated) == (state, [])  # a repeated callback changes nothing


def test_a_permanent_error_moves_on_at_once_and_that_channel_is_never_used_again() -> None:
    dead = esc.ChannelEnded(responder=11, channel=Channel.VOICE, round=0, step=0, permanent=True)
    events: list[tuple[float, esc.Event]] = [(0, esc.Start()), (1, dead)]
    events += [(t, esc.Tick()) for t in range(60, 600, 30)]
    state, log = run(CRITICAL, *events)
    assert notified(log)[2:4] == [(1, 12, "sms"), (1, 12, "voice")]
    later_to_11 = [n for n in notified(log) if n[0] > 1 and n[1] == 11]
    assert later_to_11 and all(channel == "sms" for _, _, channel in later_to_11)
    assert (11, Channel.VOICE) in state.failed


def test_pressing_2_passes_the_alert_to_the_next_step() -> None:
    _, log = run(CRITICAL, (0, esc.Start()), (15, esc.Passed(responder=11)))
    assert notified(log)[2:] == [(15, 12, "sms"), (15, 12, "voice")]


def test_the_chain_repeats_then_tells_the_operators_nobody_answered() -> None:
    events: list[tuple[float, esc.Event]] = [(0, esc.Start())] + [(t, esc.Tick()) for t in range(60, 1200, 60)]
    state, log = run(CRITICAL, *events)
    steps = len(CRITICAL.steps)
    assert len({(a.round, a.step) for _, a in log if isinstance(a, esc.Moved)}) == steps * CRITICAL.rounds
    assert state.phase == Phase.EXHAUSTED and state.deadline is None
    assert log[-1][1] == esc.PageOperators(reason="nobody_answered")
    assert esc.advance(CRITICAL, state, at(5000), esc.Acked(responder=None))[0].phase == Phase.ACKNOWLEDGED


def test_a_stale_callback_from_an_earlier_step_does_not_skip_the_current_one() -> None:
    state, _ = run(CRITICAL, (0, esc.Start()), (60, esc.Tick()))
    late = esc.ChannelEnded(responder=11, channel=Channel.VOICE, round=0, step=0, permanent=False)
    moved, actions = esc.advance(CRITICAL, state, at(61), late)
    assert (moved.step, actions) == (1, [])


def test_arrival_not_confirmed_in_time_alerts_the_operators_once() -> None:
    events: list[tuple[float, esc.Event]] = [(0, esc.Start()), (30, esc.Acked(responder=11))]
    events += [(t, esc.Tick()) for t in (1829, 1830, 1900, 3000)]
    _state, log = run(CRITICAL, *events)
    assert [(t, a) for t, a in log if isinstance(a, esc.PageOperators) and t > 0] == [
        (1830, esc.PageOperators(reason="arrival_overdue"))
    ]
    arrived, _ = run(CRITICAL, (0, esc.Start()), (30, esc.Acked(responder=11)), (600, esc.Arrived(responder=11)))
    assert arrived.phase == Phase.ARRIVED and arrived.deadline is None


def test_closing_stops_everything() -> None:
    events: list[tuple[float, esc.Event]] = [(0, esc.Start()), (5, esc.Closed())]
    events += [(t, esc.Tick()) for t in range(60, 600, 60)] + [(700, esc.Start())]
    state, log = run(CRITICAL, *events)
    assert state.phase == Phase.CLOSED and notified(log) == [(0, 11, "sms"), (0, 11, "voice")]


def test_the_plan_is_a_copy_resolved_by_role_and_survives_json() -> None:
    policy = esc.Policy(
        steps=(
            esc.Step(targets=("neighbour",), channels=(Channel.VOICE,), wait_s=30),
            esc.Step(targets=("doctor",), wait_s=30),  # nobody has this role: dropped
            esc.Step(targets=("responder:0", "operator"), wait_s=45),
        ),
        rounds=1,
    )
    plan = esc.make_plan(policy, CONTACTS, time_scale=0.1)
    assert [(s.responders, s.operators, s.wait_s) for s in plan.steps] == [((12,), False, 3.0), ((11,), True, 4.5)]
    assert esc.Plan.model_validate(plan.model_dump(mode="json")) == plan
    state, _ = run(plan, (0, esc.Start()), (1, esc.Acked(responder=12)))
    assert esc.State.model_validate(state.model_dump(mode="json")) == state


def test_a_home_without_responders_goes_straight_to_the_operators() -> None:
    plan = esc.make_plan(esc.DEFAULT_POLICIES[Severity.HIGH], [])
    assert [s.operators for s in plan.steps] == [True]
    _state, log = run(plan, (0, esc.Start()))
    assert esc.PageOperators(reason="escalation_step") in [a for _, a in log] and notified(log) == []


EVENTS = st.one_of(
    st.just(esc.Tick()),
    st.builds(esc.Passed, responder=st.sampled_from([11, 12, 13])),
    st.builds(
        esc.ChannelEnded,
        responder=st.sampled_from([11, 12, 13]),
        channel=st.sampled_from(list(Channel)),
        round=st.integers(0, 2),
        step=st.integers(0, 2),
        permanent=st.booleans(),
    ),
)


@given(
    before=st.lists(st.tuples(st.floats(0, 3000), EVENTS), max_size=20),
    after=st.lists(st.tuples(st.floats(0, 9000), EVENTS), max_size=20),
)
def test_after_an_acknowledgement_nobody_is_ever_notified_again(
    before: list[tuple[float, esc.Event]], after: list[tuple[float, esc.Event]]
) -> None:
    first, _ = run(CRITICAL, (0, esc.Start()), *sorted(before, key=lambda e: e[0]))
    state, _ = esc.advance(CRITICAL, first, at(3000), esc.Acked(responder=12))
    for t, event in sorted(after, key=lambda e: e[0]):
        state, actions = esc.advance(CRITICAL, state, at(3000 + t), event)
        assert not any(isinstance(a, esc.Notify) for a in actions)
    assert state.phase == Phase.ACKNOWLEDGED


def test_replies_in_both_languages() -> None:
    assert esc.parse_reply(" 收到 ") == (esc.Reply.ACCEPT, None)
    assert esc.parse_reply("OK #42") == (esc.Reply.ACCEPT, 42)
    assert esc.parse_reply("1") == (esc.Reply.ACCEPT, None)
    assert esc.parse_reply("已到达。") == (esc.Reply.ARRIVED, None)
    assert esc.parse_reply("9 7") == (esc.Reply.RESOLVED, 7)
    assert esc.parse_reply("who is this?") is None
    assert esc.parse_reply("") is None


def test_the_twilio_table() -> None:
    assert classify_error(500, 20500) == classify_error(503, None) == classify_error(429, None) == Verdict.RETRY
    assert classify_error(400, 21211) == classify_error(400, 21610) == Verdict.PERMANENT
    assert classify_error(400, None) == Verdict.PERMANENT
    assert classify_status("busy") == classify_status("no-answer") == Verdict.UNANSWERED
    assert classify_status("failed", 30005) == classify_status("undelivered", 30004) == Verdict.PERMANENT
    assert classify_status("failed", 20500) == Verdict.UNANSWERED
    assert classify_status("ringing") == classify_status("queued") == Verdict.PROGRESS


def test_quiet_hours_hold_back_non_critical_alerts_but_never_critical_ones() -> None:
    sleeper = CONTACTS[0].model_copy(update={"quiet_hours": "22:00-07:00"})
    contacts = [sleeper, *CONTACTS[1:]]
    night = datetime(2026, 11, 24, 23, 30, tzinfo=UTC) - timedelta(hours=8)  # 23:30 in Shanghai
    high = esc.make_plan(esc.DEFAULT_POLICIES[Severity.HIGH], contacts, timezone="Asia/Shanghai")
    state, actions = esc.advance(high, esc.State(), night, esc.Start())
    assert [(a.responder, a.channel) for a in actions if isinstance(a, esc.Notify)] == [
        (12, Channel.SMS),
        (12, Channel.VOICE),
    ]
    assert esc.Moved(round=0, step=1, reason="start", quiet=()) in actions and state.step == 1
    assert esc.Moved(round=0, step=0, reason="start", quiet=(11,)) not in actions  # step 0 had nobody awake

    critical = esc.make_plan(esc.DEFAULT_POLICIES[Severity.CRITICAL], contacts, timezone="Asia/Shanghai")
    _, actions = esc.advance(critical, esc.State(), night, esc.Start())
    assert [a.responder for a in actions if isinstance(a, esc.Notify)] == [11, 11]

    morning = night + timedelta(hours=8)
    _, actions = esc.advance(high, esc.State(), morning, esc.Start())
    assert [a.responder for a in actions if isinstance(a, esc.Notify)] == [11, 11]


def test_quiet_spans_within_a_day_and_past_midnight() -> None:
    def quiet(span: str, hour: int, minute: int = 0) -> bool:
        contact = CONTACTS[0].model_copy(update={"quiet_hours": span})
        return contact.quiet_at(datetime(2026, 1, 1, hour, minute))

    assert quiet("22:00-07:00", 23) and quiet("22:00-07:00", 6, 59) and not quiet("22:00-07:00", 7)
    assert quiet("13:00-14:30", 14, 29) and not quiet("13:00-14:30", 14, 30) and not quiet("13:00-14:30", 12)


ANY_EVENT = st.one_of(
    EVENTS,
    st.just(esc.Start()),
    st.just(esc.Closed()),
    st.builds(esc.Acked, responder=st.sampled_from([None, 11, 12])),
    st.builds(esc.Arrived, responder=st.sampled_from([None, 11, 12])),
)


@given(history=st.lists(st.tuples(st.floats(0, 5000), ANY_EVENT), max_size=25), again=ANY_EVENT)
def test_every_event_is_idempotent(history: list[tuple[float, esc.Event]], again: esc.Event) -> None:
    """Twilio retries callbacks and people press twice: the second copy of an event changes nothing."""
    state, _ = run(CRITICAL, (0, esc.Start()), *sorted(history, key=lambda e: e[0]))
    now = at(6000)
    once, _ = esc.advance(CRITICAL, state, now, again)
    twice, actions = esc.advance(CRITICAL, once, now, again)
    assert (twice, actions) == (once, [])


def test_a_technical_finding_pages_operators_and_never_reaches_the_family() -> None:
    """Device and leak findings go to the technician queue, even where the home set its own policy for that severity."""
    home_policy = esc.DEFAULT_POLICIES[Severity.CRITICAL]
    for code in (FindingCode.DEVICE_OFFLINE, FindingCode.POSSIBLE_LEAK):
        plan = esc.make_plan(esc.policy_for(code, Severity.MEDIUM, home_policy), CONTACTS)
        _, log = run(plan, (0, esc.Start()), *((t, esc.Tick()) for t in range(60, 7200, 60)))
        assert notified(log) == []
        assert esc.PageOperators(reason="escalation_step") in [a for _, a in log]
    welfare = esc.make_plan(esc.policy_for(FindingCode.INACTIVITY, Severity.HIGH, None), CONTACTS)
    assert notified(run(welfare, (0, esc.Start()))[1]) == [(0, 11, "sms"), (0, 11, "voice")]
