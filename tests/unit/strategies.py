"""Hypothesis strategies for service account names and bound-token claim sets."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "https://kubernetes.default.svc.cluster.local"
NOW = 1_800_000_000.0

_alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
labels = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_alnum),
    st.text(alphabet=_alnum + "-", max_size=20),
    st.sampled_from(_alnum) | st.just(""),
).filter(lambda s: not s.endswith("-"))
namespaces = labels
service_accounts = st.lists(labels, min_size=1, max_size=3).map(".".join)


@st.composite
def bound_claims(draw: st.DrawFn, now: float = NOW) -> dict[str, Any]:
    """A valid pod-bound claim set as kube-apiserver issues it, valid at `now`."""
    namespace = draw(namespaces)
    name = draw(service_accounts)
    iat = int(now) - draw(st.integers(0, 3000))
    lifetime = draw(st.integers(600, 365 * 86400))
    aud: str | list[str] = draw(
        st.sampled_from([[AUDIENCE], AUDIENCE, ["other", AUDIENCE], [AUDIENCE, "x"]])
    )
    exp = max(iat + lifetime, int(now) + 1)
    claims: dict[str, Any] = {
        "aud": aud,
        "exp": exp,
        "iat": iat,
        "nbf": iat,
        "iss": ISSUER,
        "jti": "dd5f1d51-6526-4818-a09f-8daaf0aa0c73",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": "58b22efa-874c-48b1-937f-0f70f8e4e3c9"},
            "pod": {"name": "be-6c7b66f7d8-g9vl4", "uid": "c399bb09"},
            "node": {"name": "desktop-worker", "uid": "0ef5c6fe"},
            # kube-apiserver: warnafter = iat + requested seconds, never after exp.
            "warnafter": min(iat + 3607, exp),
        },
    }
    return claims


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
