"""Operator accounts and console sessions: argon2 password hashes, throttled sign-in, server-side sessions
behind signed cookies, CSRF tokens."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session

from alerting.models import AuditEntry, ConsoleSession, LoginAttempt, User
from carebed.registry import Home
from carebed.schemas import utc_now
from carebed.settings import Settings

log = logging.getLogger(__name__)

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(hours=12)


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


def create_user(session: Session, username: str, password: str, role: Role, areas: Sequence[str] = ()) -> User:
    """Create or update a user; an operator must watch at least one street or community.

    Updating a user (a new password, role or areas) ends every session they have.
    """
    if len(password) < 10:
        raise ValueError("a password needs at least 10 characters")
    if role == Role.OPERATOR and not areas:
        raise ValueError("an operator needs at least one street or community (--area)")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username)
        session.add(user)
    else:
        end_user_sessions(session, username)
    user.password_hash = _hasher.hash(password)
    user.role = role.value
    user.areas = list(areas)
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    return user


class LoginOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"


# One sign-in at a time per process: otherwise a burst of parallel guesses would all pass the
# count before any of them is recorded. Each takes one argon2 verification, tens of milliseconds.
_login_lock = threading.Lock()


def attempt_login(
    session: Session, settings: Settings, username: str, password: str, address: str
) -> tuple[LoginOutcome, User | None]:
    """Check a password, unless the account or the address is locked; record the attempt either way.

    Wrong passwords are counted per account (since its last sign-in) and per client address over
    `login_window_s`; reaching the limit locks for `login_lockout_s` after the last wrong one, the
    right password included, and leaves an audit entry.
    """
    username, address = username[:64], address[:64]
    with _login_lock:
        now = utc_now()
        if _locked(session, settings, now, username, address) is not None:
            outcome, user = LoginOutcome.LOCKED, None
        else:
            user = authenticate(session, username, password)
            outcome = LoginOutcome.OK if user is not None else LoginOutcome.WRONG
        session.add(LoginAttempt(at=now, username=username, address=address, outcome=outcome.value))
        session.flush()
        if outcome is LoginOutcome.WRONG and (scope := _locked(session, settings, now, username, address)):
            log.warning("console sign-in locked", extra={"scope": scope, "address": address})
            session.add(
                AuditEntry(
                    at=now,
                    action="login_locked",
                    source="console",
                    actor=username,
                    detail={"scope": scope, "address": address, "for_s": settings.login_lockout_s},
                )
            )
        session.commit()
    return outcome, user


def _locked(session: Session, settings: Settings, now: datetime, username: str, address: str) -> str | None:
    """'account' or 'address' if that one is locked now, else None."""
    window, lockout = timedelta(seconds=settings.login_window_s), timedelta(seconds=settings.login_lockout_s)
    wrong = select(LoginAttempt.at).where(
        LoginAttempt.outcome == LoginOutcome.WRONG.value, LoginAttempt.at > now - window - lockout
    )
    last_ok = select(func.max(LoginAttempt.at)).where(
        LoginAttempt.username == username, LoginAttempt.outcome == LoginOutcome.OK.value
    )
    since_ok = session.scalar(last_ok)
    by_account = wrong.where(LoginAttempt.username == username)
    if since_ok is not None:
        by_account = by_account.where(LoginAttempt.at > since_ok)
    for scope, query, limit in (
        ("account", by_account, settings.login_max_failures),
        ("address", wrong.where(LoginAttempt.address == address), settings.login_max_failures_per_address),
    ):
        times = session.scalars(query.order_by(LoginAttempt.at.desc()).limit(limit)).all()
        if len(times) == limit and times[0] - times[-1] <= window and now < times[0] + lockout:
            return scope
    return None


def _token_id(token: str) -> str:
    """Only a hash of the token is stored: the table leaks no usable session."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(request: Request, session: Session, user: User) -> None:
    """A new server-side session; expired ones are cleared on the way."""
    now = utc_now()
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(id=_token_id(token), username=user.username, created_at=now, expires_at=now + SESSION_TTL)
    )
    request.session.clear()
    request.session.update({"sid": token, "user": user.username, "role": user.role, "csrf": secrets.token_urlsafe(24)})


def end_session(request: Request) -> None:
    token = request.session.get("sid")
    if isinstance(token, str):
        with request.app.state.carebed.sessions.begin() as session:
            session.execute(delete(ConsoleSession).where(ConsoleSession.id == _token_id(token)))
    request.session.clear()


def end_user_sessions(session: Session, username: str) -> None:
    """Every session of the user ends, wherever its cookie is kept."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.username == username))


def session_user(request: Request) -> str | None:
    """The signed-in user, if the cookie names a session that still exists on the server."""
    token, user = request.session.get("sid"), request.session.get("user")
    if not isinstance(token, str) or not isinstance(user, str):
        request.session.clear()
        return None
    with request.app.state.carebed.sessions() as session:
        row = session.get(ConsoleSession, _token_id(token))
    if row is None or row.username != user or row.expires_at <= utc_now():
        request.session.clear()
        return None
    return user


def require_user(request: Request) -> str:
    """For the API: 401 without a session; unsafe methods also need the session's CSRF token."""
    user = session_user(request)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        expected = request.session.get("csrf")
        given = request.headers.get(CSRF_HEADER, "")
        if not expected or not secrets.compare_digest(str(expected), given):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return user


def session_secret(settings: Settings) -> str:
    """CAREBED_SESSION_SECRET, else a key generated once and kept 0600 in the data folder.

    A key made afresh at each start signed every operator out at each restart.
    """
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    path = settings.data_dir / "session.secret"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="ascii").strip()


CurrentUser = Annotated[str, Depends(require_user)]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user as the API needs them: name, role, and the homes they may see."""

    username: str
    role: Role
    areas: tuple[str, ...]

    def homes(self) -> Select[tuple[str]]:
        """The ids of the homes this user may see: an operator's streets or communities, or every home."""
        query = select(Home.id)
        if self.role == Role.OPERATOR:
            query = query.where(or_(Home.street.in_(self.areas), Home.community.in_(self.areas)))
        return query


def require_viewer(request: Request, username: CurrentUser) -> Viewer:
    """The user is read afresh on each request, so a changed role or area applies at once."""
    with request.app.state.carebed.sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
    if user is None:
        request.session.clear()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "login required")
    return Viewer(user.username, Role(user.role), tuple(user.areas))


CurrentViewer = Annotated[Viewer, Depends(require_viewer)]


def require_role(*roles: Role) -> Callable[[Viewer], Viewer]:
    def check(viewer: CurrentViewer) -> Viewer:
        if viewer.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not do this")
        return viewer

    return check


Supervisor = Annotated[Viewer, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))]
