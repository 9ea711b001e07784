"""Alert folding and state changes, against real SQLite and PostgreSQL databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerting.models import Alert, AlertStatus, AuditEntry, Notification
from alerting.store import Outcome, Source, acknowledge, ingest_finding, resolve
from carebed.registry import RegistryFile
from carebed.schemas import Finding, FindingCode, Severity

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 24, 0, 12, tzinfo=UTC)


def finding(
    home: str, code: FindingCode = FindingCode.SOS, minute: int = 0, severity: Severity = Severity.CRITICAL
) -> Finding:
    ts = T0 + timedelta(minutes=minute)
    return Finding(
        id=f"{home}-w:{code}:{ts.isoformat()}",
        home_id=home,
        code=code,
        severity=severity,
        ts=ts,
        detected_at=ts,
        summary="SOS button pressed",
    )


def test_first_finding_opens_an_alert_and_queues_an_sms_and_a_call_to_the_first_responder(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    home = homes.homes[0]
    with sessions.begin() as session:
        result = ingest_finding(session, finding(home.id), TZ)
    assert result.created and not result.duplicate
    with sessions() as session:
        alert = session.get_one(Alert, result.alert_id)
        sms, call = alert.notifications
        assert (alert.status, alert.severity, alert.finding_count) == (AlertStatus.OPEN, "critical", 1)
        assert (sms.channel, call.channel) == ("sms", "voice")
        assert sms.recipient == call.recipient == home.responders[0].phone
        assert (sms.round, sms.step) == (call.round, call.step) == (0, 0)
        assert home.residents[0].name in sms.body
        assert "08:12" in sms.body  # 00:12 UTC shown in the centre's time zone


def test_a_redelivered_finding_changes_nothing(sessions: sessionmaker[Session], homes: RegistryFile) -> None:
    copy = finding(homes.homes[0].id)
    with sessions.begin() as session:
        ingest_finding(session, copy, TZ)
    with sessions.begin() as session:
        assert ingest_finding(session, copy, TZ).duplicate
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 2  # one SMS, one call
        assert session.scalar(select(Alert.finding_count)) == 1


def test_repeated_findings_fold_into_one_alert_without_more_messages(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    home = homes.homes[0].id
    with sessions.begin() as session:
        first = ingest_finding(session, finding(home, minute=0), TZ)
        second = ingest_finding(session, finding(home, minute=3), TZ)
        other = ingest_finding(session, finding(home, FindingCode.WATER_LEAK, severity=Severity.HIGH), TZ)
    assert second.alert_id == first.alert_id and not second.created
    assert other.created and other.alert_id != first.alert_id
    with sessions() as session:
        alert = session.get_one(Alert, first.alert_id)
        assert alert.finding_count == 2
        assert alert.last_ts == T0 + timedelta(minutes=3)
        assert [n.channel for n in alert.notifications] == ["sms", "voice"]


def test_after_resolution_the_same_cause_opens_a_new_alert(
    sessions: sessionmaker[Session], homes: RegistryFile
) -> None:
    home = homes.homes[1].id
    with sessions.begin() as session:
        first = ingest_finding(session, finding(home, minute=0), TZ)
        alert = session.get_one(Alert, first.alert_id)
        assert resolve(session, alert, "op", Source.CONSOLE, Outcome.RESIDENT_OK)
        assert not resolve(session, alert, "op", Source.CONSOLE, Outcome.RESIDENT_OK)
    with sessions.begin() as session:
        again = ingest_finding(session, finding(home, minute=90), TZ)
    assert again.created and again.alert_id != first.alert_id


def test_acknowledgement_is_idempotent_and_audited(sessions: sessionmaker[Session], homes: RegistryFile) -> None:
    with sessions.begin() as session:
        result = ingest_finding(session, finding(homes.homes[0].id), TZ)
        alert = session.get_one(Alert, result.alert_id)
        assert acknowledge(session, alert, "op", Source.CONSOLE)
        assert not acknowledge(session, alert, "other", Source.SMS_REPLY)
    with sessions() as session:
        alert = session.get_one(Alert, result.alert_id)
        assert (alert.status, alert.acked_by, alert.ack_source) == (AlertStatus.ACKNOWLEDGED, "op", "console")
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.alert_id == alert.id)).all()
        assert actions == [
            "created",
            "escalation_started",
            "operators_paged",
            "escalated",
            "sms_queued",
            "voice_queued",
            "acknowledged",
            "queued_cancelled",
        ]


def test_every_finding_code_has_a_text_in_both_languages() -> None:
    from alerting.messages import CAUSES, LANGUAGES

    assert set(CAUSES) == set(FindingCode)
    assert all(set(texts) == set(LANGUAGES) and all(texts.values()) for texts in CAUSES.values())
