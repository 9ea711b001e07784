"""Twilio adapter: the real ``twilio`` client, or a dry run that only records what it would send."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from requests.exceptions import RequestException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from alerting.twilio_codes import Verdict, classify_error
from carebed.settings import Settings

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 15.0
RING_S = 30  # an unanswered call ends (no-answer) and the escalation moves on, before most voicemails pick up


class SendError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Sent:
    sid: str
    status: str


# <Say> voice and language per responder language: Amazon Polly voices that Twilio offers.
SAY_VOICES = {"zh-CN": ("Polly.Zhiyu", "cmn-CN"), "en": ("Polly.Joanna", "en-US")}


def say_twiml(text: str, language: str) -> str:
    """TwiML that speaks the text twice in the responder's language, so a missed first hearing is repeated."""
    voice, locale = SAY_VOICES.get(language, SAY_VOICES["zh-CN"])
    response = VoiceResponse()
    response.say(text, voice=voice, language=locale, loop=2)
    return str(response)


class SmsSender(Protocol):
    """Sends SMS and places calls; the name predates calls."""

    dry_run: bool

    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> Sent: ...

    def call(
        self, to: str, text: str, language: str, voice_url: str | None = None, status_callback: str | None = None
    ) -> Sent: ...

    def find_sent(self, to: str, body: str, since: datetime, channel: str = "sms") -> Sent | None: ...


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, TwilioRestException) and classify_error(exc.status, exc.code) == Verdict.RETRY


# Twilio answered with an error, so nothing was created: a quick retry or two is safe. Longer
# outages are the outbox's business (durable backoff), and a timeout is never retried here,
# because the request may have gone through.
_quick_retry = Retrying(
    retry=retry_if_exception(_worth_retrying),
    wait=wait_exponential(multiplier=0.25, max=2),
    stop=stop_after_attempt(3),
    reraise=True,
)


@contextmanager
def _errors() -> Iterator[None]:
    """Twilio's answers as SendError, transient or not as alerting.twilio_codes says."""
    try:
        yield
    except TwilioRestException as exc:
        transient = classify_error(exc.status, exc.code) == Verdict.RETRY
        raise SendError(f"twilio {exc.status} code={exc.code}: {exc.msg}", transient=transient) from exc
    except RequestException as exc:
        raise SendError(f"twilio unreachable: {type(exc).__name__}", transient=True) from exc


class TwilioSender:
    """Sends through Twilio's Messages API; ``CAREBED_TWILIO_API_BASE`` points it at a mock."""

    dry_run = False

    def __init__(self, settings: Settings) -> None:
        assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        self._client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=TwilioHttpClient(timeout=HTTP_TIMEOUT_S),
        )
        if settings.twilio_api_base:
            self._client.api.base_url = settings.twilio_api_base.rstrip("/")
        self._from = settings.twilio_from

    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> Sent:
        extra = {"status_callback": status_callback} if status_callback else {}
        with _errors():
            message = _quick_retry(self._client.messages.create, to=to, from_=self._from, body=body, **extra)
        return Sent(sid=str(message.sid), status=str(message.status))

    def call(
        self, to: str, text: str, language: str, voice_url: str | None = None, status_callback: str | None = None
    ) -> Sent:
        """With ``voice_url`` Twilio fetches the spoken menu from our webhook; without, the text is only read out."""
        how: dict[str, str] = {"url": voice_url} if voice_url else {"twiml": say_twiml(text, language)}
        if status_callback:
            how["status_callback"] = status_callback
        with _errors():
            placed = _quick_retry(self._client.calls.create, to=to, from_=self._from, timeout=RING_S, **how)
        return Sent(sid=str(placed.sid), status=str(placed.status))

    def find_sent(self, to: str, body: str, since: datetime, channel: str = "sms") -> Sent | None:
        """Look for a message or call we may have placed just before a crash, so it is not placed twice.

        A message is matched by its text; a call has none to match, so any call to the number
        created since the claim is taken for ours.
        """
        after = since - timedelta(minutes=1)
        try:
            if channel == "voice":
                calls = self._client.calls.list(to=to, limit=20)
                placed = [c for c in calls if c.date_created is not None and c.date_created >= after]
                return Sent(sid=str(placed[0].sid), status=str(placed[0].status)) if placed else None
            recent = self._client.messages.list(to=to, date_sent_after=after, limit=50)
        except (TwilioRestException, RequestException) as exc:
            raise SendError(f"twilio lookup failed: {exc}", transient=True) from exc
        for message in recent:
            if message.body == body:
                return Sent(sid=str(message.sid), status=str(message.status))
        return None


class DryRunSender:
    """Without Twilio credentials nothing leaves the machine; the message is kept as 'dry_run'."""

    dry_run = True

    def send_sms(self, to: str, body: str, status_callback: str | None = None) -> Sent:
        return Sent(sid="dry-run", status="dry_run")

    def call(
        self, to: str, text: str, language: str, voice_url: str | None = None, status_callback: str | None = None
    ) -> Sent:
        return Sent(sid="dry-run", status="dry_run")

    def find_sent(self, to: str, body: str, since: datetime, channel: str = "sms") -> Sent | None:
        return None


def make_sender(settings: Settings) -> SmsSender:
    if settings.twilio_configured:
        return TwilioSender(settings)
    log.warning("Twilio is not configured: messages are recorded as dry runs, not sent")
    return DryRunSender()
