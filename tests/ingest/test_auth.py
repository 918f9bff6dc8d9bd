"""Webhook authentication: bearer, basic, Grafana HMAC (with and without timestamp). Pure."""

from __future__ import annotations

import base64

import pytest

from incidentctl.ingest.receiver.auth import AuthFailed, AuthPolicy, check_request, sign

NOW = 1_800_000_000.0
BODY = b'{"receiver":"x","alerts":[],"message":"a \\u0026 b"}\n'
BEARER = AuthPolicy(bearer_token="s3cret-token")
BASIC = AuthPolicy(basic_user="grafana", basic_password="pa:ss word")
BOTH = AuthPolicy(bearer_token="s3cret-token", basic_user="grafana", basic_password="pa:ss word")
HMAC = AuthPolicy(hmac_secret="hmac-key")
HMAC_TS = AuthPolicy(hmac_secret="hmac-key", hmac_timestamp_header="X-Grafana-Alerting-Timestamp")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def signed(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    if ts is None:
        return {"x-grafana-alerting-signature": sign(secret, body)}
    return {"x-grafana-alerting-signature": sign(secret, f"{ts}:".encode() + body),
            "x-grafana-alerting-timestamp": str(ts)}


# (case, policy, headers, body, error fragment or None when accepted)
CASES = [
    # auth off: anything goes
    ("off", AuthPolicy(), {}, BODY, None),
    # the right bearer token; the scheme is case-insensitive
    ("bearer ok", BEARER, {"authorization": "Bearer s3cret-token"}, BODY, None),
    ("bearer lowercase scheme", BEARER, {"authorization": "bearer s3cret-token"}, BODY, None),
    # no header at all
    ("bearer missing", BEARER, {}, BODY, "missing Authorization"),
    # a wrong token, and a prefix of the right one
    ("bearer wrong", BEARER, {"authorization": "Bearer nope"}, BODY, "wrong bearer token"),
    ("bearer prefix", BEARER, {"authorization": "Bearer s3cret"}, BODY, "wrong bearer token"),
    # basic sent where a bearer token is configured
    ("bearer given basic", BEARER, {"authorization": basic("grafana", "x")}, BODY, "scheme 'basic' not accepted"),
    # basic auth: password containing ':' and a space
    ("basic ok", BASIC, {"authorization": basic("grafana", "pa:ss word")}, BODY, None),
    ("basic wrong password", BASIC, {"authorization": basic("grafana", "nope")}, BODY, "wrong basic credentials"),
    ("basic wrong user", BASIC, {"authorization": basic("root", "pa:ss word")}, BODY, "wrong basic credentials"),
    ("basic not base64", BASIC, {"authorization": "Basic !!!"}, BODY, "malformed basic"),
    # both configured: either is accepted
    ("both via bearer", BOTH, {"authorization": "Bearer s3cret-token"}, BODY, None),
    ("both via basic", BOTH, {"authorization": basic("grafana", "pa:ss word")}, BODY, None),
    # HMAC over the raw bytes
    ("hmac ok", HMAC, signed("hmac-key", BODY), BODY, None),
    ("hmac uppercase hex", HMAC, {"x-grafana-alerting-signature": sign("hmac-key", BODY).upper()}, BODY, None),
    ("hmac missing", HMAC, {}, BODY, "missing X-Grafana-Alerting-Signature"),
    ("hmac wrong key", HMAC, signed("other-key", BODY), BODY, "wrong HMAC"),
    # the same JSON re-encoded is not the same bytes: signatures are over what was sent
    ("hmac body changed", HMAC, signed("hmac-key", BODY), BODY.replace(b"\\u0026", b"&"), "wrong HMAC"),
    # with a timestamp header: `<ts>:<body>` is signed
    ("hmac ts ok", HMAC_TS, signed("hmac-key", BODY, int(NOW) - 10), BODY, None),
    ("hmac ts stale", HMAC_TS, signed("hmac-key", BODY, int(NOW) - 301), BODY, "outside the allowed clock skew"),
    ("hmac ts future", HMAC_TS, signed("hmac-key", BODY, int(NOW) + 301), BODY, "outside the allowed clock skew"),
    ("hmac ts missing", HMAC_TS, signed("hmac-key", BODY), BODY, "missing X-Grafana-Alerting-Timestamp"),
    ("hmac ts not a number", HMAC_TS, {**signed("hmac-key", BODY, int(NOW)), "x-grafana-alerting-timestamp": "soon"},
     BODY, "not Unix seconds"),
    # a valid signature without the timestamp prefix is refused when a timestamp is expected
    ("hmac ts unsigned", HMAC_TS, {**signed("hmac-key", BODY), "x-grafana-alerting-timestamp": str(int(NOW))},
     BODY, "wrong HMAC"),
    # token and HMAC both required
    ("token+hmac ok", AuthPolicy(bearer_token="t", hmac_secret="k"),
     {"authorization": "Bearer t", **signed("k", BODY)}, BODY, None),
    ("token ok hmac wrong", AuthPolicy(bearer_token="t", hmac_secret="k"),
     {"authorization": "Bearer t", **signed("x", BODY)}, BODY, "wrong HMAC"),
]


@pytest.mark.parametrize("case,policy,headers,body,error", CASES, ids=[c[0] for c in CASES])
def test_check_request(case, policy, headers, body, error):
    if error is None:
        check_request(policy, headers, body, NOW)
    else:
        with pytest.raises(AuthFailed, match=error):
            check_request(policy, headers, body, NOW)


def test_messages_never_contain_secrets():
    for case, policy, headers, body, _error in CASES:
        try:
            check_request(policy, headers, body, NOW)
        except AuthFailed as exc:
            for secret in ("s3cret-token", "pa:ss word", "hmac-key"):
                assert secret not in str(exc), case


def test_grafana_signature_vector():
    # HMAC-SHA256("secret", "1700000000:{}") computed independently with openssl:
    # printf '1700000000:{}' | openssl dgst -sha256 -hmac secret
    assert sign("secret", b"1700000000:{}") == "90d1dfc305363e56438c2a03dac8b91f27a9842b7e361afe3743831bca23c856"
