"""RFC 6962 / 9162 hashing and proofs against published vectors and the RFC's own recursion."""

from __future__ import annotations

import hashlib

import pytest

from audit.merkle import (
    EMPTY_ROOT,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    range_hash,
    root_hash,
    split_point,
    verify_consistency,
    verify_inclusion,
)

# The leaves and roots of the RFC 6962 reference tests (certificate-transparency).
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def mth(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 §2.1 defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split_point(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = split_point(len(leaves))
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def rfc_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = split_point(n)
    if m <= k:
        return [*rfc_subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*rfc_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def stored(leaves: list[bytes]) -> object:
    return lambda node: mth(leaves[node[1] << node[0] : (node[1] + 1) << node[0]])


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_reference_vectors(size: int) -> None:
    assert root_hash(size, stored(LEAVES)).hex() == ROOTS[size - 1]  # type: ignore[arg-type]


def test_empty_tree() -> None:
    assert root_hash(0, stored([])) == EMPTY_ROOT  # type: ignore[arg-type]


LEAVES_70 = [n.to_bytes(2, "big") for n in range(70)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 31, 64, 70])
def test_inclusion_proofs_match_the_rfc_and_verify(size: int) -> None:
    leaves = LEAVES_70[:size]
    root = mth(leaves)
    for index in range(size):
        proof = [range_hash(a, b, stored(leaves)) for a, b in inclusion_ranges(index, size)]  # type: ignore[arg-type]
        assert proof == rfc_path(index, leaves)
        assert verify_inclusion(leaf_hash(leaves[index]), index, size, proof, root)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
        if size > 1:
            other = (index + 1) % size
            assert not verify_inclusion(leaf_hash(leaves[index]), other, size, proof, root)


@pytest.mark.parametrize("new_size", [1, 2, 3, 7, 8, 9, 31, 64, 70])
def test_consistency_proofs_match_the_rfc_and_verify(new_size: int) -> None:
    leaves = LEAVES_70[:new_size]
    new_root = mth(leaves)
    for old_size in range(1, new_size + 1):
        proof = [
            range_hash(a, b, stored(leaves))  # type: ignore[arg-type]
            for a, b in consistency_ranges(old_size, new_size)
        ]
        assert proof == rfc_subproof(old_size, leaves, True)
        old_root = mth(leaves[:old_size])
        assert verify_consistency(old_size, new_size, proof, old_root, new_root)
        if old_size < new_size:
            forked = mth([*leaves[: old_size - 1], b"fork"])
            assert not verify_consistency(old_size, new_size, proof, forked, new_root)
            assert not verify_consistency(old_size, new_size, proof[:-1], old_root, new_root)


def test_known_consistency_vector() -> None:
    """RFC 6962 reference: the consistency proof from 6 to 8 leaves."""
    proof = [range_hash(a, b, stored(LEAVES)) for a, b in consistency_ranges(6, 8)]  # type: ignore[arg-type]
    assert [p.hex() for p in proof] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
