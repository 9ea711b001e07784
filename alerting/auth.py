"""Operator accounts and console sessions: argon2 password hashes, signed session cookies, CSRF tokens."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.models import User

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

CSRF_HEADER = "X-CSRF-Token"


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


def create_user(session: Session, username: str, password: str, role: Role) -> User:
    if len(password) < 10:
        raise ValueError("a password needs at least 10 characters")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username)
        session.add(user)
    user.password_hash = _hasher.hash(password)
    user.role = role.value
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
