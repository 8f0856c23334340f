"""Windows with a halo: the unit of work of inference.

Each window's core is written to the output; the halo around it (clipped at the raster edge) gives
the network the context it needs, so seams between windows do not show and memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, List, Tuple

from rasterio.windows import Window


@dataclass(frozen=True)
class Tile:
    core: Window      # the pixels this tile writes
    read: Window      # core + halo, clipped to the raster
    row_off: int      # where the core starts inside `read`
    col_off: int

    @property
    def read_shape(self) -> Tuple[int, int]:
        return int(self.read.height), int(self.read.width)

    @property
    def read_slices(self) -> Tuple[slice, slice]:
        """(rows, cols) of the read window in the scene."""
        r, c = int(self.read.row_off), int(self.read.col_off)
        return slice(r, r + int(self.read.height)), slice(c, c + int(self.read.width))

    @property
    def core_slices(self) -> Tuple[slice, slice]:
        """(rows, cols) of the core in the scene."""
        r, c = int(self.core.row_off), int(self.core.col_off)
        return slice(r, r + int(self.core.height)), slice(c, c + int(self.core.width))

    @property
    def core_in_read(self) -> Tuple[slice, slice]:
        """(rows, cols) of the core inside a block read for this tile."""
        h, w = int(self.core.height), int(self.core.width)
        return slice(self.row_off, self.row_off + h), slice(self.col_off, self.col_off + w)


def iter_tiles(height: int, width: int, tile_size: int, halo: int) -> Iterator[Tile]:
    if tile_size < 1:
        raise ValueError("tile_size must be positive")
    for r in range(0, height, tile_size):
        for c in range(0, width, tile_size):
            h, w = min(tile_size, height - r), min(tile_size, width - c)
            r0, c0 = max(0, r - halo), max(0, c - halo)
            r1, c1 = min(height, r + h + halo), min(width, c + w + halo)
            yield Tile(Window(c, r, w, h), Window(c0, r0, c1 - c0, r1 - r0), r - r0, c - c0)


def batches(tiles: Iterable[Tile], batch_size: int) -> Iterator[List[Tile]]:
    """Group consecutive tiles of equal read shape (they stack into one tensor)."""
    batch = []
    for tile in tiles:
        if batch and (len(batch) == batch_size or tile.read_shape != batch[0].read_shape):
            yield batch
            batch = []
        batch.append(tile)
    if batch:
        yield batch


def count_tiles(height: int, width: int, tile_size: int) -> int:
    return -(-height // tile_size) * -(-width // tile_size)
