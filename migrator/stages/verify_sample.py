"""Which users ``migrator verify`` reads one by one, and the coverage it reports.

Kinde's users list (``expand=identities``) gives every user's names, suspension and identities by
type and value at 500 users a request; only the verified flags (``GET /users/{id}/identities``),
properties and social identities need a request per user. Those per-user reads go to every user when
the run has at most ``SAMPLE_SIZE``; beyond that to a sample of ``SAMPLE_SIZE`` drawn by a seed: the
users whose hash of (seed, Clerk id) is smallest, so the same seed over the same users draws the same
sample, and the seed is printed and journaled. ``--deep`` reads every user.

Memberships come from the same pages (``expand=organizations``: each user's organization codes), for every
user. Roles are listed only per organization (its member pages: at least one request per organization)
or per membership (``GET /organizations/{code}/users/{id}/roles``): ``roles_from_member_pages`` picks the
cheaper for the run, so a tenant with an organization per customer does not pay a request per user.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SAMPLE_SIZE = 2000
SEED_RANGE = 100_000  # short enough to read aloud and retype
MEMBER_PAGE = 500  # members a page of GET /organizations/{code}/users
MEMBERSHIPS_FROM_PAGES, MEMBERSHIPS_FROM_MEMBERS = "user pages", "organization member pages"
ROLES_FROM_MEMBERS, ROLES_SAMPLED = "organization member pages", "sampled users' memberships"
ROLES_EVERY = "every user's memberships"


@dataclass(frozen=True)
class Depth:
    """How many users verify reads one by one: ``sample`` (with ``seed``, drawn when None), or all (``deep``)."""

    sample: int = SAMPLE_SIZE
    seed: int | None = None
    deep: bool = False


@dataclass(frozen=True)
class Coverage:
    """Which check covered whom: ``pages`` Kinde users listed by pages; ``read`` of ``of`` users read one by one."""

    pages: int
    read: int
    of: int
    mode: str  # "every" (the run is within the sample size), "sample", "deep"
    seed: int | None = None
    memberships: str | None = None  # which read checked memberships (None: the run has no organizations)
    roles: str | None = None  # which read checked the memberships' roles

    def describe(self) -> str:
        """One line for the screen and summaries: ``pages: 100,000 users; per-user reads: 2,000 sampled (seed 8812)``."""
        if self.mode == "sample":
            reads = f"{self.read:,} sampled of {self.of:,} (seed {self.seed})"
        elif self.mode == "deep":
            reads = f"every user ({self.read:,}, --deep)"
        else:
            reads = f"every user ({self.read:,})"
        text = f"pages: {self.pages:,} users; per-user reads: {reads}"
        if self.memberships:
            text += f"; memberships: {self.memberships}; roles: {self.roles}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "per_user_reads": self.read,
            "per_user_of": self.of,
            "mode": self.mode,
            "seed": self.seed,
            "memberships": self.memberships,
            "roles": self.roles,
            "text": self.describe(),
        }


def new_seed() -> int:
    return secrets.randbelow(SEED_RANGE - 1) + 1


def sample_key(seed: int, clerk_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{clerk_id}".encode(), digest_size=8).digest()


def choose_sample(clerk_ids: Iterable[str], size: int, seed: int) -> set[str]:
    """The ``size`` Clerk ids with the smallest ``sample_key``: the same for the same seed and ids, whatever
    their order; memory is the sample's, not the run's."""
    return {clerk_id for _, clerk_id in heapq.nsmallest(size, ((sample_key(seed, c), c) for c in clerk_ids))}


def roles_from_member_pages(organizations: int, memberships: int, users: int, depth: Depth) -> bool:
    """Whether verify reads every organization's member pages (the roles of every member) rather than
    the roles of the sampled users' memberships one by one: the one that costs fewer requests.

    Member pages cost at least one request per organization (``organizations + memberships / 500``);
    role reads cost one per membership read (every membership when every user is read, else the sample's
    share). ``--deep`` reads everything."""
    if depth.deep:
        return True
    member_pages = organizations + memberships // MEMBER_PAGE
    sampled = memberships if users <= depth.sample else math.ceil(memberships * depth.sample / max(1, users))
    return member_pages <= sampled
