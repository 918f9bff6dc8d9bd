"""Request authentication: bearer token, basic auth, Grafana's HMAC signature (webhooks) and
Slack's v0 signature (the Slack door of the action inbox).

Pure functions over the request's headers and raw body; secrets are compared in constant time
(`hmac.compare_digest`) and never appear in a message. Grafana 12 may sign a timestamp with the
body (`"<ts>:" + body`): the timestamp must be within `hmac_max_skew`, and the request's
`Signature` is returned, valid until the timestamp leaves the skew (signatures.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from incidentctl.config import Settings
from incidentctl.ingest.signatures import Signature
from incidentctl.ingest.signatures import signature as signature_of

SCHEME = "grafana-hmac"  # names Grafana's signatures among those recorded


@dataclass(frozen=True)
class AuthPolicy:
    """What a webhook must present. Empty fields are not required; all empty = auth off."""

    bearer_token: str = ""
    basic_user: str = ""
    basic_password: str = ""
    hmac_secret: str = ""
    hmac_signature_header: str = "X-Grafana-Alerting-Signature"
    hmac_timestamp_header: str = ""
    hmac_max_skew: float = 300.0

    @classmethod
    def from_settings(cls, s: Settings) -> AuthPolicy:
        return cls(s.auth_bearer_token, s.auth_basic_user, s.auth_basic_password, s.hmac_secret,
                   s.hmac_signature_header, s.hmac_timestamp_header, s.hmac_max_skew)

    @property
    def wants_authorization(self) -> bool:
        return bool(self.bearer_token or (self.basic_user and self.basic_password))

    @property
    def secrets(self) -> tuple[str, ...]:
        """The configured secrets (for blotting them out of what is logged)."""
        return tuple(s for s in (self.bearer_token, self.basic_password, self.hmac_secret) if s)

    @property
    def challenge(self) -> str:
        """The WWW-Authenticate header for a 401."""
        if self.bearer_token:
            return 'Bearer realm="incidentctl"'
        if self.basic_user:
            return 'Basic realm="incidentctl"'
        return 'HMAC realm="incidentctl"'


class AuthFailed(Exception):
    """The request's credentials are missing or wrong; the message says which, never the secret."""


def check_request(policy: AuthPolicy, headers: Mapping[str, str], body: bytes, now: float) -> Signature | None:
    """Raises AuthFailed unless the request satisfies every configured requirement.

    `headers` has lowercase names. When both a bearer token and basic credentials are configured,
    either is accepted (a sender presents one Authorization header). HMAC is checked on top;
    returns what `check_signature` returns.
    """
    check_authorization(policy, headers)
    return check_signature(policy, headers, body, now)


def check_authorization(policy: AuthPolicy, headers: Mapping[str, str]) -> None:
    """Checks the Authorization header when a token or basic credentials are configured."""
    if not policy.wants_authorization:
        return
    header = headers.get("authorization", "")
    if not header:
        raise AuthFailed("missing Authorization header")
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and policy.bearer_token:
        if _equal(credentials.strip(), policy.bearer_token):
            return
        raise AuthFailed("wrong bearer token")
    if scheme == "basic" and policy.basic_user and policy.basic_password:
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthFailed("malformed basic credentials") from None
        # Both compared, always, so the time taken does not tell which one was wrong.
        user_ok = _equal(user, policy.basic_user)
        password_ok = _equal(password, policy.basic_password)
        if user_ok and password_ok:
            return
        raise AuthFailed("wrong basic credentials")
    raise AuthFailed(f"authorization scheme {scheme!r} not accepted")


def check_signature(policy: AuthPolicy, headers: Mapping[str, str], body: bytes, now: float) -> Signature | None:
    """Checks Grafana's HMAC signature (and its timestamp) when a secret is configured.

    With a timestamp header, returns the request's Signature, valid until the timestamp leaves
    the allowed skew: a replay before then passes this check again, so the receiver records it
    (signatures.py). Without one the signature never expires and identical bodies are re-sent
    legitimately (Grafana's repeats), so there is nothing to record: None.
    """
    if not policy.hmac_secret:
        return None
    signature = headers.get(policy.hmac_signature_header.lower(), "").strip().lower()
    if not signature:
        raise AuthFailed(f"missing {policy.hmac_signature_header} header")
    message = body
    if policy.hmac_timestamp_header:
        raw_ts = headers.get(policy.hmac_timestamp_header.lower(), "").strip()
        if not raw_ts:
            raise AuthFailed(f"missing {policy.hmac_timestamp_header} header")
        try:
            timestamp = int(raw_ts)
        except ValueError:
            raise AuthFailed(f"{policy.hmac_timestamp_header} is not Unix seconds") from None
        if abs(now - timestamp) > policy.hmac_max_skew:
            raise AuthFailed(f"{policy.hmac_timestamp_header} is outside the allowed clock skew")
        message = f"{timestamp}:".encode() + body
    if not _equal(signature, sign(policy.hmac_secret, message)):
        raise AuthFailed("wrong HMAC signature")
    if not policy.hmac_timestamp_header:
        return None
    expires = datetime.fromtimestamp(timestamp + policy.hmac_max_skew, timezone.utc)
    return signature_of(SCHEME, signature, expires)


def sign(secret: str, message: bytes) -> str:
    """Grafana's signature: HMAC-SHA256 keyed with the secret, lowercase hex."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


SLACK_SCHEME = "slack-v0"
SLACK_MAX_SKEW = 300.0  # Slack's own rule: refuse a timestamp more than five minutes away


def check_slack_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float,
                          max_skew: float = SLACK_MAX_SKEW) -> Signature:
    """Checks Slack's v0 request signature (`X-Slack-Signature: v0=<hex HMAC-SHA256 of
    "v0:{X-Slack-Request-Timestamp}:{raw body}">`, keyed by the app's signing secret), compared
    in constant time, its timestamp within `max_skew` of `now`. Returns the request's Signature
    (valid until the timestamp leaves the skew: a replay before then is recorded, signatures.py);
    raises AuthFailed, whose message never holds the secret."""
    if not secret:
        raise AuthFailed("no Slack signing secret is configured (SLACK_SIGNING_SECRET)")
    raw_ts = headers.get("x-slack-request-timestamp", "").strip()
    given = headers.get("x-slack-signature", "").strip()
    if not raw_ts:
        raise AuthFailed("missing X-Slack-Request-Timestamp header")
    if not given:
        raise AuthFailed("missing X-Slack-Signature header")
    if not raw_ts.isdigit():
        raise AuthFailed("X-Slack-Request-Timestamp is not Unix seconds")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > max_skew:
        raise AuthFailed("X-Slack-Request-Timestamp is more than five minutes away (a replay, or a clock off)")
    expected = "v0=" + sign(secret, b"v0:" + raw_ts.encode() + b":" + body)
    if not _equal(given.lower(), expected):
        raise AuthFailed("wrong X-Slack-Signature")
    expires = datetime.fromtimestamp(timestamp + max_skew, timezone.utc)
    return signature_of(SLACK_SCHEME, expected, expires)
