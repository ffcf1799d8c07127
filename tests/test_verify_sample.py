"""The sample verify reads one by one: drawn by a seed, the same for the same seed whatever the order."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from migrator.stages.verify_sample import (
    MEMBER_PAGE,
    SEED_RANGE,
    Coverage,
    Depth,
    choose_sample,
    new_seed,
    roles_from_member_pages,
    sample_key,
)

IDS = st.sets(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12), max_size=200)


@given(IDS, st.integers(min_value=1, max_value=250), st.integers(min_value=0, max_value=SEED_RANGE), st.randoms())
def test_a_seed_draws_the_same_sample_of_the_smallest_keys_whatever_the_order(
    ids: set[str], size: int, seed: int, shuffler: random.Random
) -> None:
    ordered = sorted(ids)
    shuffled = list(ids)
    shuffler.shuffle(shuffled)
    chosen = choose_sample(ordered, size, seed)
    assert chosen == choose_sample(shuffled, size, seed)
    assert chosen <= ids and len(chosen) == min(size, len(ids))
    if chosen and len(chosen) < len(ids):  # every user left out hashes above every user drawn
        assert max(sample_key(seed, c) for c in chosen) < min(sample_key(seed, c) for c in ids - chosen)


def test_different_seeds_draw_different_samples() -> None:
    ids = [f"user_{n}" for n in range(10_000)]
    samples = {frozenset(choose_sample(ids, 2000, seed)) for seed in (1, 2, 3)}
    assert len(samples) == 3
    assert all(len(s) == 2000 for s in samples)


def test_a_drawn_seed_is_short_and_positive() -> None:
    assert all(1 <= new_seed() < SEED_RANGE for _ in range(200))


def test_coverage_says_which_check_covered_whom() -> None:
    sampled = Coverage(pages=100_000, read=2000, of=99_997, mode="sample", seed=8812)
    assert sampled.describe() == "pages: 100,000 users; per-user reads: 2,000 sampled of 99,997 (seed 8812)"
    assert Coverage(pages=197, read=197, of=197, mode="every").describe() == (
        "pages: 197 users; per-user reads: every user (197)"
    )
    assert "--deep" in Coverage(pages=5, read=5, of=5, mode="deep").describe()
    assert sampled.to_json()["seed"] == 8812 and sampled.to_json()["text"] == sampled.describe()


@given(
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=0, max_value=3 * 10**6),
    st.integers(min_value=1, max_value=10**7),
    st.integers(min_value=1, max_value=5000),
)
def test_roles_come_from_whichever_read_costs_fewer_requests(
    organizations: int, memberships: int, users: int, sample: int
) -> None:
    depth = Depth(sample=sample)
    member_pages = organizations + memberships // MEMBER_PAGE
    role_reads = memberships if users <= sample else math.ceil(memberships * sample / users)
    assert roles_from_member_pages(organizations, memberships, users, depth) == (member_pages <= role_reads)
    assert roles_from_member_pages(organizations, memberships, users, Depth(sample=sample, deep=True))


def test_the_roles_rule_at_the_benchmarks_sizes() -> None:
    """100,000 users, 70,000 memberships: 1,000 organizations cost 1,140 member pages (fewer than the
    sample's ~1,400 role reads); 10,000 small ones would cost 10,140: the sample's roles are read."""
    assert roles_from_member_pages(1000, 70_000, 100_000, Depth())
    assert not roles_from_member_pages(10_000, 70_000, 100_000, Depth())
    assert roles_from_member_pages(20, 140, 200, Depth())  # every user read: 140 role reads against 20 pages
    assert not roles_from_member_pages(20, 140, 200, Depth(sample=10))
