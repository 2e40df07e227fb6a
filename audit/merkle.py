"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

Pure functions over ranges of leaves. The log stores the hash of every perfect subtree (aligned,
power-of-two size), so any range the RFC's recursion visits is a handful of stored nodes:
roots and proofs cost O(log n) lookups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

Node = tuple[int, int]  # (level, index): leaves [index << level, (index + 1) << level)
Range = tuple[int, int]  # leaves [start, end)
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two smaller than `size` (size ≥ 2): where the RFC splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def is_perfect(start: int, end: int) -> bool:
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0


def perfect_node(start: int, end: int) -> Node:
    level = (end - start).bit_length() - 1
    return level, start >> level


def nodes_for(ranges: Iterable[Range]) -> set[Node]:
    """The stored perfect subtrees needed to hash every range."""
    needed: set[Node] = set()
    pending = list(ranges)
    while pending:
        start, end = pending.pop()
        if is_perfect(start, end):
            needed.add(perfect_node(start, end))
        else:
            middle = start + split_point(end - start)
            pending += [(start, middle), (middle, end)]
    return needed


def range_hash(start: int, end: int, node: Callable[[Node], bytes]) -> bytes:
    """MTH(D[start:end]) from stored perfect subtrees."""
    if end <= start:
        raise ValueError("empty range")
    if is_perfect(start, end):
        return node(perfect_node(start, end))
    middle = start + split_point(end - start)
    return node_hash(range_hash(start, middle, node), range_hash(middle, end, node))


def root_hash(size: int, node: Callable[[Node], bytes]) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hash(0, size, node)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form the audit path of leaf `index` in a tree of `size`
    (RFC 6962 §2.1.1), nearest the leaf first."""
    if not 0 <= index < size:
        raise ValueError("index: outside the tree")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + split_point(end - start)
        if index < middle:
            path.append((middle, end))
            end = middle
        else:
            path.append((start, middle))
            start = middle
    return path[::-1]


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """The ranges whose hashes prove a tree of `old_size` is a prefix of one of `new_size`
    (RFC 6962 §2.1.2), in the RFC's order."""
    if not 0 < old_size <= new_size:
        raise ValueError("sizes: need 0 < old_size <= new_size")
    path: list[Range] = []
    start, end, complete = 0, new_size, True
    m = old_size
    while m != end - start:
        middle = start + split_point(end - start)
        if m <= middle - start:
            path.append((middle, end))
            end = middle
        else:
            path.append((start, middle))
            m -= middle - start
            start = middle
            complete = False
    if not complete:
        path.append((start, end))
    return path[::-1]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` place the leaf hash `leaf` at `index` under `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `old_root` a prefix of the tree of `new_root`?"""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class CompactRange:
    """Hashes of the perfect subtrees covering leaves [0, size): the tree head, incrementally."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    @classmethod
    def restore(cls, size: int, subtrees: Sequence[bytes]) -> CompactRange:
        """The range of `size` leaves from its perfect-subtree hashes (`subtrees`), largest
        first: one per 1-bit of `size`."""
        widths = [1 << bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(widths) != len(subtrees):
            raise ValueError(f"a range of {size} leaves has {len(widths)} perfect subtrees")
        restored = cls()
        restored.size = size
        restored._stack = list(zip(widths, subtrees, strict=True))
        return restored

    @property
    def subtrees(self) -> list[bytes]:
        return [digest for _, digest in self._stack]

    def copy(self) -> CompactRange:
        return CompactRange.restore(self.size, self.subtrees)

    def append(self, digest: bytes) -> None:
        self.size += 1
        width, current = 1, digest
        while self._stack and self._stack[-1][0] == width:
            _, left = self._stack.pop()
            current = node_hash(left, current)
            width *= 2
        self._stack.append((width, current))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        current = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            current = node_hash(left, current)
        return current
