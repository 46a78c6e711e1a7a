"""Links and sessions: who is asking, derived from an unguessable link and a cookie.

Each reader has one link ``/r/<token>`` and the study one admin link ``/a/<token>``; a token is
128 random bits (32 hex characters) from :mod:`secrets`, and the database stores only its SHA-256.
Opening a link creates a session, whose id (another 128 random bits) goes into an HttpOnly,
SameSite=Strict cookie; the database again keeps only its hash. Issuing a new link for a reader
deletes the old token, and with it (``ON DELETE CASCADE``) every session opened through it.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from perceptiongap.readers import db

__all__ = [
    "COOKIE",
    "Session",
    "hash_secret",
    "issue_admin_link",
    "issue_links",
    "issue_reader_link",
    "open_link",
    "session_for",
]

#: Name of the session cookie.
COOKIE = "pg_session"


@dataclass(frozen=True)
class Session:
    """Who a request comes from: ``role`` is ``reader`` (with ``reader_id``) or ``admin``."""

    role: str
    reader_id: str | None


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a token or session id; 128 random bits need no slow hash."""
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


def _new_secret() -> str:
    return secrets.token_hex(16)


def issue_reader_link(connection: sqlite3.Connection, reader_id: str) -> str:
    """A new token for ``reader_id`` (the old one and its sessions stop working); returns the token."""
    token = _new_secret()
    with db.write(connection):
        connection.execute("DELETE FROM tokens WHERE role = 'reader' AND reader_id = ?", (reader_id,))
        connection.execute(
            "INSERT INTO tokens (hash, role, reader_id, issued_at) VALUES (?, 'reader', ?, ?)",
            (hash_secret(token), reader_id, db.now()),
        )
        db.log_event(connection, "link_issued", reader_id=reader_id)
    return token


def issue_admin_link(connection: sqlite3.Connection) -> str:
    """A new admin token (the old one and its sessions stop working); returns the token."""
    token = _new_secret()
    with db.write(connection):
        connection.execute("DELETE FROM tokens WHERE role = 'admin'")
        connection.execute(
            "INSERT INTO tokens (hash, role, reader_id, issued_at) VALUES (?, 'admin', NULL, ?)",
            (hash_secret(token), db.now()),
        )
        db.log_event(connection, "link_issued", detail="admin")
    return token


def issue_links(connection: sqlite3.Connection, *, renew: bool = False) -> dict[str | None, str]:
    """Tokens for every reader (key: reader id) and the admin (key: None) that have none yet.

    With ``renew``, new tokens for everyone, replacing the old ones. Readers come in list order.
    """
    readers = [row[0] for row in connection.execute("SELECT id FROM readers ORDER BY list_order")]
    holders = {row[0] for row in connection.execute("SELECT reader_id FROM tokens WHERE role = 'reader'")}
    has_admin = connection.execute("SELECT count(*) FROM tokens WHERE role = 'admin'").fetchone()[0] > 0
    issued: dict[str | None, str] = {}
    for reader in readers:
        if renew or reader not in holders:
            issued[reader] = issue_reader_link(connection, reader)
    if renew or not has_admin:
        issued[None] = issue_admin_link(connection)
    return issued


def open_link(connection: sqlite3.Connection, token: str, role: str) -> str | None:
    """Open a ``role`` link: a new session id, or None if the token is not a valid ``role`` link."""
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        return None
    token_hash = hash_secret(token)
    session = _new_secret()
    with db.write(connection):
        row = connection.execute("SELECT role, reader_id FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
        if row is None or row["role"] != role:
            return None
        connection.execute(
            "INSERT INTO sessions (hash, token_hash, created_at) VALUES (?, ?, ?)",
            (hash_secret(session), token_hash, db.now()),
        )
        db.log_event(connection, "link_opened", reader_id=row["reader_id"], detail=role)
    return session


def session_for(connection: sqlite3.Connection, session_id: str | None) -> Session | None:
    """The session behind a cookie value, or None (no cookie, unknown or revoked session)."""
    if not session_id or len(session_id) != 32:
        return None
    row = connection.execute(
        "SELECT t.role, t.reader_id FROM sessions s JOIN tokens t ON t.hash = s.token_hash WHERE s.hash = ?",
        (hash_secret(session_id),),
    ).fetchone()
    return None if row is None else Session(role=row["role"], reader_id=row["reader_id"])
