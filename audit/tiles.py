"""C2SP tlog-tiles, pure: tile paths, tile contents, entry bundles, and proofs rebuilt from
tiles fetched by any means (`certsvc audit publish-tiles` writes them, `verify-tiles` reads them
over HTTP).

Tiles are RFC 6962 hashes 8 levels apart: the tile at level L, index N holds the hashes of the
perfect subtrees of 256^L leaves numbered N·256 … N·256+255 (fewer in a partial tile, `.p/<W>`);
a tile path spells N in 3-digit groups, all but the last prefixed `x` (1234067 →
`x001/x234/067`). An entry bundle holds the leaves of a level-0 tile, each prefixed with its
length as a big-endian uint16.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from audit.merkle import CompactRange, inclusion_ranges, leaf_hash, node_hash, range_hash
from audit.merkle import root_hash as merkle_root_hash

HEIGHT = 8
WIDTH = 1 << HEIGHT
HASH = 32
MAX_ENTRY = 0xFFFF


class TileError(ValueError):
    """A tile or bundle that is malformed or does not match what it must hash to."""


@dataclass(frozen=True)
class Tile:
    """Level (or None for an entry bundle), index, and width (256 for a full one)."""

    level: int | None
    index: int
    width: int = WIDTH

    @property
    def path(self) -> str:
        level = "entries" if self.level is None else str(self.level)
        partial = "" if self.width == WIDTH else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{partial}"

    @property
    def full(self) -> bool:
        return self.width == WIDTH


def encode_index(index: int) -> str:
    """N as 3-digit path elements, all but the last prefixed `x`."""
    if index < 0:
        raise ValueError("tile index: not negative")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    return "/".join([f"x{group}" for group in reversed(groups[1:])] + [groups[0]])


def tiles_for(size: int) -> list[Tile]:
    """Every tile (levels 0 and up) and entry bundle of a tree of `size` leaves: the full ones
    and, where the level has a remainder, its one partial tile."""
    tiles: list[Tile] = []
    level = 0
    while size >> (HEIGHT * level):
        hashes = size >> (HEIGHT * level)
        for index in range(hashes // WIDTH):
            tiles.append(Tile(level, index))
        if hashes % WIDTH:
            tiles.append(Tile(level, hashes // WIDTH, hashes % WIDTH))
        level += 1
    return [*(Tile(None, t.index, t.width) for t in tiles if t.level == 0), *tiles]


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect tree over `hashes` (a power of two of them)."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """The hashes tiles hold, level by level: the leaf hashes, then the root of each full
    group of 256 of the level below."""
    found = [list(leaf_hashes)]
    while len(found[-1]) >= WIDTH:
        below = found[-1]
        found.append(
            [subtree_root(below[i : i + WIDTH]) for i in range(0, len(below) - WIDTH + 1, WIDTH)]
        )
    return found


def tile_content(tile: Tile, hashes_by_level: Sequence[Sequence[bytes]]) -> bytes:
    """The bytes of a hash tile: its `width` hashes, concatenated."""
    assert tile.level is not None
    start = tile.index * WIDTH
    return b"".join(hashes_by_level[tile.level][start : start + tile.width])


def bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY:
            raise TileError(f"an entry of {len(entry)} bytes does not fit a bundle's uint16")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def unbundle(data: bytes, first: int) -> list[bytes]:
    """The entries of a bundle whose first entry is number `first`."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise TileError(f"entry {first + len(entries)}: its bundle ends inside a length")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise TileError(f"entry {first + len(entries)}: its bundle ends inside it")
        entries.append(data[offset : offset + length])
        offset += length
    return entries


def split_hashes(data: bytes, tile: Tile) -> list[bytes]:
    if len(data) != tile.width * HASH:
        raise TileError(f"{tile.path}: {len(data)} bytes, not {tile.width} hashes")
    return [data[i : i + HASH] for i in range(0, len(data), HASH)]


Fetch = Callable[[str], bytes]


class TileReader:
    """A tree of `size` leaves read from tiles got with `fetch(path)`, each fetched once."""

    def __init__(self, size: int, fetch: Fetch) -> None:
        self.size = size
        self._fetch = fetch
        self._tiles: dict[Tile, list[bytes]] = {}

    def tile(self, level: int, index: int) -> list[bytes]:
        """The hashes of tile (level, index): full if the tree fills it, else partial."""
        hashes = self.size >> (HEIGHT * level)
        width = WIDTH if index < hashes // WIDTH else hashes % WIDTH
        if index > hashes // WIDTH or width == 0:
            raise TileError(f"tile {level}/{index}: outside a tree of {self.size}")
        tile = Tile(level, index, width)
        if tile not in self._tiles:
            self._tiles[tile] = split_hashes(self._fetch(tile.path), tile)
        return self._tiles[tile]

    def node(self, key: tuple[int, int]) -> bytes:
        """The hash of the perfect subtree (merkle level, index), from the one tile under it."""
        level, index = key
        tile_level, height = divmod(level, HEIGHT)
        first = index << height
        hashes = self.tile(tile_level, first // WIDTH)
        offset = first % WIDTH
        return subtree_root(hashes[offset : offset + (1 << height)])

    def root(self) -> bytes:
        return merkle_root_hash(self.size, self.node)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return [
            range_hash(start, end, self.node) for start, end in inclusion_ranges(index, self.size)
        ]

    def entries(self, bundle_index: int) -> list[bytes]:
        """The entries of a bundle, each checked against its level-0 tile hash; `TileError`
        naming the first entry that differs."""
        leaves = self.tile(0, bundle_index)
        tile = Tile(None, bundle_index, len(leaves))
        first = bundle_index * WIDTH
        found = unbundle(self._fetch(tile.path), first)
        if len(found) != len(leaves):
            raise TileError(f"{tile.path}: {len(found)} entries, not {len(leaves)}")
        for number, (entry, expected) in enumerate(zip(found, leaves, strict=True)):
            if leaf_hash(entry) != expected:
                raise TileError(
                    f"entry {first + number}: its bytes in {tile.path} do not hash to its leaf "
                    "hash in the tile"
                )
        return found

    def all_entries(self) -> Iterator[bytes]:
        """Every entry in order, each checked against its tile; then the leaf hashes must
        make the root the tiles make."""
        tree = CompactRange()
        for bundle_index in range((self.size + WIDTH - 1) // WIDTH):
            for entry in self.entries(bundle_index):
                tree.append(leaf_hash(entry))
                yield entry
        if tree.root() != self.root():
            raise TileError("the entries do not make the tiles' root")
