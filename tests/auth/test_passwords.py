"""Password hashing (pure, argon2id)."""

from __future__ import annotations

import time

import pytest

from auth.errors import WeakPassword
from auth.passwords import HASHER, MAX_PASSWORD_LEN, hash_password, needs_rehash, verify_password


def test_argon2id_owasp_parameters():
    h = hash_password("correct horse battery")
    assert h.startswith("$argon2id$") and "m=19456,t=2,p=1" in h
    assert verify_password(h, "correct horse battery")
    assert not verify_password(h, "Correct horse battery")
    assert not needs_rehash(h)


def test_one_megabyte_password_rejected_without_hashing():
    huge = "a" * 1_000_000
    with pytest.raises(WeakPassword):
        hash_password(huge)
    h = hash_password("correct horse battery")
    start = time.perf_counter()
    assert not verify_password(h, huge)
    assert time.perf_counter() - start < 0.005  # refused by length, not hashed


def test_short_password_rejected():
    with pytest.raises(WeakPassword):
        hash_password("short")
    assert len("x" * MAX_PASSWORD_LEN) == MAX_PASSWORD_LEN
    assert verify_password(hash_password("x" * MAX_PASSWORD_LEN), "x" * MAX_PASSWORD_LEN)


def test_unknown_user_costs_a_hash_too():
    """verify_password(None, ...) runs against a dummy hash: same work as a wrong password."""
    h = hash_password("correct horse battery")

    def timed(stored):
        start = time.perf_counter()
        assert not verify_password(stored, "wrong password!")
        return time.perf_counter() - start

    # Interleaved, and the fastest of each: a neighbour's load slows single runs, not the minimum.
    known, unknown = [], []
    for _ in range(5):
        known.append(timed(h))
        unknown.append(timed(None))
    assert 0.5 < min(unknown) / min(known) < 2.0


def test_old_parameters_need_rehash():
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("correct horse battery")
    assert needs_rehash(weak)
    assert verify_password(weak, "correct horse battery")
    assert HASHER.time_cost == 2
