"""Twilio's webhooks: the spoken menu of a call, its key press, status callbacks and SMS replies.

Every request must carry a valid ``X-Twilio-Signature`` computed over ``CAREBED_PUBLIC_URL``
plus the path; anything else gets 403 and changes nothing. Without a public URL or an auth
token the webhooks are off (403), since no signature could be checked.

A signature never expires, so a captured request stays valid: each callback that can change
something (a status, a key press, an SMS reply) is recorded by its call or message SID and what
it reported, in the transaction of its effect, and a replay of it does nothing and answers
nothing. The spoken menu changes nothing and is served again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from alerting import escalation as esc
from alerting.escalator import transact
from alerting.messages import SMS_CONFIRM, VOICE_ACCEPTED, VOICE_NO_KEY, VOICE_PASSED, VOICE_PROMPT, VOICE_TAKEN
from alerting.models import Alert, AlertStatus, Notification
from alerting.state import AppState
from alerting.store import (
    Outcome,
    Replayed,
    Source,
    acknowledge,
    channel_ended,
    confirm_arrival,
    contact_key,
    escalate,
    record_receipt,
    record_status,
    resolve,
)
from alerting.twilio_client import SAY_VOICES
from alerting.twilio_codes import Verdict, classify_status

log = logging.getLogger(__name__)

WEBHOOKS = Counter("carebed_alerting_webhooks_total", "Twilio webhook requests, by kind and result", ["kind", "result"])

T = TypeVar("T")

router = APIRouter(prefix="/twilio", include_in_schema=False)


async def signed_form(request: Request) -> dict[str, str]:
    """The request's form fields, once its Twilio signature has been checked against the public URL."""
    settings = request.app.state.carebed.settings
    form = {key: str(value) for key, value in (await request.form()).items()}
    kind = request.url.path.split("/")[2] if request.url.path.count("/") >= 2 else "?"
    if not (settings.public_url and settings.twilio_auth_token):
        WEBHOOKS.labels(kind, "disabled").inc()
        raise HTTPException(403, "webhooks are off: CAREBED_PUBLIC_URL and the Twilio auth token must be set")
    url = settings.public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
        WEBHOOKS.labels(kind, "forged").inc()
        log.warning("twilio webhook with a bad signature refused", extra={"path": request.url.path})
        raise HTTPException(403, "bad signature")
    WEBHOOKS.labels(kind, "ok").inc()
    return form


Form = Annotated[dict[str, str], Depends(signed_form)]


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.carebed
    return state


def _twiml(response: VoiceResponse | MessagingResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _say(response: VoiceResponse, text: str, language: str) -> None:
    voice, locale = SAY_VOICES.get(language, SAY_VOICES["zh-CN"])
    response.say(text, voice=voice, language=locale)


def _receipt(form: dict[str, str], *parts: object) -> str | None:
    """What identifies a callback: its kind, notification and what it reported, with Twilio's call or message SID.

    Twilio always sends the SID; a request without one could only have been signed with the auth
    token itself, and is acted on each time.
    """
    sid = form.get("CallSid") or form.get("MessageSid") or form.get("SmsSid")
    return ":".join(str(part) for part in (*parts, sid))[:200] if sid else None


def _once(state: AppState, kind: str, work: Callable[[Session], T]) -> T | None:
    """Run a callback's work in one transaction; None if it is a replay, which did nothing."""
    try:
        result = transact(state.sessions, work)
    except Replayed:
        WEBHOOKS.labels(kind, "replayed").inc()
        log.info("replayed twilio webhook ignored", extra={"kind": kind})
        return None
    _changed(state)
    return result


def _notification(session: Session, notification_id: int) -> Notification:
    notification = session.get(Notification, notification_id)
    if notification is None:
        raise HTTPException(404, "no such notification")
    return notification


@router.post("/voice/{notification_id}")
def voice(request: Request, notification_id: int, form: Form) -> Response:
    """What the callee hears: the alert, then "press 1 to accept, 2 to pass it on"."""
    state = _state(request)
    with state.sessions() as session:
        notification = _notification(session, notification_id)
        body, language = notification.body, notification.language
    voice_name, locale = SAY_VOICES.get(language, SAY_VOICES["zh-CN"])
    response = VoiceResponse()
    gather = response.gather(
        num_digits=1, action=f"{state.settings.public_url}/twilio/gather/{notification_id}", method="POST", timeout=8
    )
    gather.say(body, voice=voice_name, language=locale)
    gather.say(VOICE_PROMPT[language], voice=voice_name, language=locale, loop=2)
    _say(response, VOICE_NO_KEY[language], language)
    return _twiml(response)


@router.post("/gather/{notification_id}")
def gather(request: Request, notification_id: int, form: Form) -> Response:
    """A key press: 1 accepts the alert (the only acknowledgement a call can give), 2 passes it on."""
    state = _state(request)
    digits = form.get("Digits", "")
    receipt = _receipt(form, "gather", notification_id, digits)

    def work(session: Session) -> tuple[str, str]:
        notification = _notification(session, notification_id)
        record_receipt(session, receipt)
        key = contact_key(session, notification)
        alert, language = notification.alert, notification.language
        if digits == "1":
            took = acknowledge(session, alert, _actor(key), Source.KEY_PRESS, key) or alert.acked_by == _actor(key)
            return (VOICE_ACCEPTED if took else VOICE_TAKEN)[language], language
        if digits == "2" and key is not None:
            escalate(session, alert, esc.Passed(responder=key), Source.KEY_PRESS, _actor(key), state.settings.tz)
            return VOICE_PASSED[language], language
        return VOICE_NO_KEY[language], language

    said = _once(state, "gather", work)
    response = VoiceResponse()
    if said is not None:
        _say(response, *said)
    return _twiml(response)


@router.post("/status/{notification_id}")
def status(request: Request, notification_id: int, form: Form) -> Response:
    """Status callback of a call or message; an unanswered or failed one moves the escalation on at once."""
    state = _state(request)
    reported = form.get("CallStatus") or form.get("MessageStatus") or ""
    code = form.get("ErrorCode", "")
    verdict = classify_status(reported, int(code) if code.isdigit() else None)
    receipt = _receipt(form, "status", notification_id, reported)

    def work(session: Session) -> bool:
        notification = _notification(session, notification_id)
        record_receipt(session, receipt)
        record_status(session, notification, reported, code or None, verdict)
        if verdict in (Verdict.UNANSWERED, Verdict.PERMANENT):
            return channel_ended(session, notification, permanent=verdict == Verdict.PERMANENT, tz=state.settings.tz)
        return False

    if _once(state, "status", work):
        log.info("escalation moved by a status callback", extra={"notification_id": notification_id})
    return Response(status_code=204)


@router.post("/sms")
def sms_reply(request: Request, form: Form) -> Response:
    """A responder's reply: matched by their number to their newest open alert (or the one they name)."""
    state = _state(request)
    sender, parsed = form.get("From", ""), esc.parse_reply(form.get("Body", ""))
    receipt = _receipt(form, "sms")

    def work(session: Session) -> str | None:
        record_receipt(session, receipt)
        query = (
            select(Notification)
            .join(Alert)
            .where(Notification.recipient == sender, Alert.status != AlertStatus.RESOLVED)
            .order_by(Notification.id.desc())
        )
        if parsed and parsed[1] is not None:
            query = query.where(Notification.alert_id == parsed[1])
        notification = session.scalars(query.limit(1)).first()
        if notification is None:
            return None
        alert, language = notification.alert, notification.language
        if parsed is None:
            return SMS_CONFIRM["unknown"][language]
        key = contact_key(session, notification)
        reply, actor = parsed[0], _actor(key)
        done = "too_late"
        if reply == esc.Reply.ACCEPT and acknowledge(session, alert, actor, Source.SMS_REPLY, key):
            done = "accept"
        elif reply == esc.Reply.PASS and key is not None:
            escalate(session, alert, esc.Passed(responder=key), Source.SMS_REPLY, actor, state.settings.tz)
            done = "pass"
        elif reply == esc.Reply.ARRIVED and confirm_arrival(session, alert, actor, Source.SMS_REPLY, key):
            done = "arrived"
        elif reply == esc.Reply.RESOLVED and resolve(session, alert, actor, Source.SMS_REPLY, Outcome.VISITED):
            done = "resolved"
        return SMS_CONFIRM[done][language].format(id=alert.id)

    answer = _once(state, "sms", work)
    response = MessagingResponse()
    if answer is not None:
        response.message(answer)
    return _twiml(response)


def _actor(key: int | None) -> str:
    return f"responder:{key}" if key is not None else "responder"


def _changed(state: AppState) -> None:
    state.changed()
    state.dispatcher.wake()
