"""Which service accounts may use a protected route: exact subjects or a whole namespace."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from domain.identity import SUBJECT_PREFIX
from domain.rules import is_dns1123_label, split_subject

__all__ = ["SubjectPolicy"]


class SubjectPolicy(msgspec.Struct, frozen=True):
    """Allowed subjects; an empty policy allows nobody (fail closed)."""

    subjects: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> SubjectPolicy:
        """Build a policy from `system:serviceaccount:<ns>:<name>` and `...:<ns>:*` entries.

        Raises:
            ValueError: naming the first entry that is neither form.
        """
        subjects: set[str] = set()
        namespaces: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry.endswith(":*"):
                namespace = entry[len(SUBJECT_PREFIX) : -2]
                if entry.startswith(SUBJECT_PREFIX) and is_dns1123_label(namespace):
                    namespaces.add(namespace)
                    continue
            elif split_subject(entry) is not None:
                subjects.add(entry)
                continue
            raise ValueError(
                f"{entry!r} is not system:serviceaccount:<namespace>:<name> "
                "or system:serviceaccount:<namespace>:*"
            )
        return cls(frozenset(subjects), frozenset(namespaces))

    def allows(self, subject: str) -> bool:
        """True when the subject is listed, or is a service account of a listed namespace."""
        if subject in self.subjects:
            return True
        parsed = split_subject(subject)
        return parsed is not None and parsed[0] in self.namespaces
