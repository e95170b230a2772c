"""Property tests of the subject policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.policy import SubjectPolicy

from .strategies import namespaces, service_accounts


def sa(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@given(namespaces, service_accounts)
def test_empty_policy_allows_nobody(namespace: str, name: str) -> None:
    assert not SubjectPolicy.parse([]).allows(sa(namespace, name))


@given(namespaces, service_accounts)
def test_exact_subject_is_allowed(namespace: str, name: str) -> None:
    assert SubjectPolicy.parse([sa(namespace, name)]).allows(sa(namespace, name))


@given(namespaces, service_accounts, service_accounts)
def test_exact_subject_allows_no_other_name(namespace: str, name: str, other: str) -> None:
    policy = SubjectPolicy.parse([sa(namespace, name)])
    assert policy.allows(sa(namespace, other)) is (other == name)


@given(namespaces, namespaces, service_accounts)
def test_namespace_wildcard_allows_exactly_that_namespace(
    allowed: str, namespace: str, name: str
) -> None:
    policy = SubjectPolicy.parse([f"system:serviceaccount:{allowed}:*"])
    assert policy.allows(sa(namespace, name)) is (namespace == allowed)


@given(st.text(max_size=80))
def test_arbitrary_subjects_never_pass_a_namespace_policy_by_accident(subject: str) -> None:
    policy = SubjectPolicy.parse(["system:serviceaccount:default:*"])
    if policy.allows(subject):
        assert subject.startswith("system:serviceaccount:default:")
        assert subject.count(":") == 3


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "system:serviceaccount:*",
        "system:serviceaccount:*:*",
        "default:be",
        "system:serviceaccount:Bad:x",
    ],
)
def test_bad_entries_are_refused_with_their_text(entry: str) -> None:
    with pytest.raises(ValueError, match="is not system:serviceaccount"):
        SubjectPolicy.parse([entry])
