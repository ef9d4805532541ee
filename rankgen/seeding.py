"""Per-item random generators: the stream depends only on (seed, key), never on worker or order."""

from __future__ import annotations

import hashlib

import numpy as np


def key_words(*key: object) -> list[int]:
    digest = hashlib.blake2b("\x1f".join(map(str, key)).encode(), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def item_seed(seed: int, *key: object) -> int:
    """A 63-bit integer seed for one item, stored in corpora so each output can be replayed."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, *key_words(*key)])
    return int(state.generate_state(2, np.uint64)[0] >> np.uint64(1))


def rng_for(seed: int, *key: object) -> np.random.Generator:
    return np.random.default_rng(item_seed(seed, *key))
