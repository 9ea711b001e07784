"""Operator accounts and console sessions: argon2 password hashes, signed session cookies, CSRF tokens."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from alerting.models import User
from carebed.registry import Home

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

CSRF_HEADER = "X-CSRF-Token"


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


def create_user(session: Session, username: str, password: str, role: Role, areas: Sequence[str] = ()) -> User:
    """Create or update a user; an operator must watch at least one street or community."""
    if len(password) < 10:
        raise ValueError("a password needs at least 10 characters")
    if role == Role.OPERATOR and not areas:
        raise ValueError("an operator needs at least one street or community (--area)")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username)
        session.add(user)
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


def start_session(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update({"user": user.username, "role": user.role, "csrf": secrets.token_urlsafe(24)})


def session_user(request: Request) -> str | None:
    user = request.session.get("user")
    return user if isinstance(user, str) else None


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
