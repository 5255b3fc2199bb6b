"""Synthetic SCIM users: the same bodies are seeded by COPY, posted to the peer and searched for."""

from __future__ import annotations

from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"

_GIVEN = ("Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy",
          "John", "Katherine", "Leslie", "Margaret", "Niklaus", "Radia", "Shafi", "Sophie",
          "Tim", "Whitfield", "Yukihiro")  # fmt: skip
_FAMILY = ("Lovelace", "Turing", "Liskov", "Shannon", "Knuth", "Dijkstra", "Allen", "Hopper",
           "Lamarr", "McCarthy", "Johnson", "Lamport", "Hamilton", "Wirth", "Perlman",
           "Goldwasser", "Wilson", "Berners-Lee", "Diffie", "Matsumoto")  # fmt: skip


def user_name(i: int) -> str:
    given, family = _GIVEN[i % len(_GIVEN)], _FAMILY[(i // len(_GIVEN)) % len(_FAMILY)]
    return f"{given}.{family}.{i}@corp.example".lower()


def work_email(i: int) -> str:
    given, family = _GIVEN[i % len(_GIVEN)], _FAMILY[(i // len(_GIVEN)) % len(_FAMILY)]
    return f"{given[0]}{family}{i}@mail.corp.example".lower()


def user(i: int) -> dict[str, Any]:
    """User number `i` in the stored form of a POST body (what `scim.resources` keeps)."""
    given, family = _GIVEN[i % len(_GIVEN)], _FAMILY[(i // len(_GIVEN)) % len(_FAMILY)]
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name(i),
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "displayName": f"{given} {family}",
        "active": True,
        "emails": [{"value": work_email(i), "type": "work", "primary": True}],
    }
