"""Pure core: the one table that says what each Twilio status and error code means for escalation.

Sources: Twilio's call and message status values and its error dictionary
(https://www.twilio.com/docs/api/errors). A code not listed falls back on the HTTP status:
5xx and 429 are worth retrying, any other 4xx is not.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    PROGRESS = "progress"  # still on its way (queued, ringing, sent)
    DELIVERED = "delivered"  # reached the handset; an acknowledgement may still follow
    RETRY = "retry"  # transient: send again with backoff
    UNANSWERED = "unanswered"  # reached nobody this time: move the escalation on, try again next round
    PERMANENT = "permanent"  # the number cannot be reached on this channel: mark it failed, move on at once


STATUSES: dict[str, Verdict] = {
    # Calls
    "queued": Verdict.PROGRESS,
    "initiated": Verdict.PROGRESS,
    "ringing": Verdict.PROGRESS,
    "in-progress": Verdict.DELIVERED,
    "completed": Verdict.UNANSWERED,  # voicemail also "completes": only a key press acknowledges
    "busy": Verdict.UNANSWERED,
    "no-answer": Verdict.UNANSWERED,
    "canceled": Verdict.UNANSWERED,
    "failed": Verdict.UNANSWERED,  # refined by the error code below
    # Messages
    "accepted": Verdict.PROGRESS,
    "scheduled": Verdict.PROGRESS,
    "sending": Verdict.PROGRESS,
    "sent": Verdict.PROGRESS,
    "delivered": Verdict.DELIVERED,
    "read": Verdict.DELIVERED,
    "undelivered": Verdict.UNANSWERED,
}

ERRORS: dict[int, Verdict] = {
    20429: Verdict.RETRY,  # too many requests
    20500: Verdict.RETRY,  # internal server error
    20503: Verdict.RETRY,  # service unavailable
    21211: Verdict.PERMANENT,  # invalid 'To' number
    21214: Verdict.PERMANENT,  # 'To' cannot be reached
    21215: Verdict.PERMANENT,  # geographic permission for calls not enabled
    21216: Verdict.PERMANENT,  # number blocked for calls
    21217: Verdict.PERMANENT,  # number does not appear valid
    21408: Verdict.PERMANENT,  # SMS to this region not enabled
    21610: Verdict.PERMANENT,  # recipient replied STOP: blocked
    21612: Verdict.PERMANENT,  # 'To' not reachable by SMS
    21614: Verdict.PERMANENT,  # 'To' is not a mobile number
    13224: Verdict.PERMANENT,  # invalid number for a call
    13225: Verdict.PERMANENT,  # forbidden number
    13227: Verdict.PERMANENT,  # no international permission
    30003: Verdict.UNANSWERED,  # handset off or out of coverage: try again next round
    30004: Verdict.PERMANENT,  # message blocked
    30005: Verdict.PERMANENT,  # unknown or inactive handset
    30006: Verdict.PERMANENT,  # landline or unreachable carrier
    30007: Verdict.PERMANENT,  # filtered by the carrier
    30008: Verdict.UNANSWERED,  # unknown delivery error
}


def classify_error(http_status: int, code: int | None) -> Verdict:
    """What to do when Twilio's REST API refuses a request."""
    if code is not None and code in ERRORS:
        return ERRORS[code]
    if http_status >= 500 or http_status == 429:
        return Verdict.RETRY
    return Verdict.PERMANENT


def classify_status(status: str, error_code: int | None = None) -> Verdict:
    """What a status callback means; an error code, when Twilio gives one, decides a failure."""
    verdict = STATUSES.get(status.lower(), Verdict.PROGRESS)
    if verdict == Verdict.UNANSWERED and error_code is not None:
        coded = ERRORS.get(error_code, Verdict.UNANSWERED)
        return Verdict.UNANSWERED if coded == Verdict.RETRY else coded
    return verdict
