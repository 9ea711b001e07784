"""Twilio adapter: the real ``twilio`` client, or a dry run that only records what it would send."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from carebed.settings import Settings

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 15.0


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

    def send_sms(self, to: str, body: str) -> Sent: ...

    def call(self, to: str, text: str, language: str) -> Sent: ...

    def find_sent(self, to: str, body: str, since: datetime) -> Sent | None: ...


@contextmanager
def _errors() -> Iterator[None]:
    """Twilio's answers as SendError: a 5xx, a 429 or no answer is worth retrying, any other 4xx is not."""
    try:
        yield
    except TwilioRestException as exc:
        transient = exc.status >= 500 or exc.status == 429
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

    def send_sms(self, to: str, body: str) -> Sent:
        with _errors():
            message = self._client.messages.create(to=to, from_=self._from, body=body)
        return Sent(sid=str(message.sid), status=str(message.status))

    def call(self, to: str, text: str, language: str) -> Sent:
        with _errors():
            placed = self._client.calls.create(to=to, from_=self._from, twiml=say_twiml(text, language))
        return Sent(sid=str(placed.sid), status=str(placed.status))

    def find_sent(self, to: str, body: str, since: datetime) -> Sent | None:
        """Look for a message we may have sent just before a crash, so it is not sent twice."""
        try:
            recent = self._client.messages.list(to=to, date_sent_after=since - timedelta(minutes=1), limit=50)
        except (TwilioRestException, RequestException) as exc:
            raise SendError(f"twilio lookup failed: {exc}", transient=True) from exc
        for message in recent:
            if message.body == body:
                return Sent(sid=str(message.sid), status=str(message.status))
        return None


class DryRunSender:
    """Without Twilio credentials nothing leaves the machine; the message is kept as 'dry_run'."""

    dry_run = True

    def send_sms(self, to: str, body: str) -> Sent:
        return Sent(sid="dry-run", status="dry_run")

    def call(self, to: str, text: str, language: str) -> Sent:
        return Sent(sid="dry-run", status="dry_run")

    def find_sent(self, to: str, body: str, since: datetime) -> Sent | None:
        return None


def make_sender(settings: Settings) -> SmsSender:
    if settings.twilio_configured:
        return TwilioSender(settings)
    log.warning("Twilio is not configured: messages are recorded as dry runs, not sent")
    return DryRunSender()
