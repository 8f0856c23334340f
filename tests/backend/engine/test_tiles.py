from backend.engine.tiles import batches, count_tiles, iter_tiles


def test_tile_cores_cover_the_raster_exactly_once():
    covered = [[0] * 70 for _ in range(53)]
    tiles = list(iter_tiles(53, 70, 16, 5))
    assert len(tiles) == count_tiles(53, 70, 16)
    for t in tiles:
        for r in range(int(t.core.row_off), int(t.core.row_off + t.core.height)):
            for c in range(int(t.core.col_off), int(t.core.col_off + t.core.width)):
                covered[r][c] += 1
    assert all(v == 1 for row in covered for v in row)


def test_halo_is_clipped_at_edges_and_core_offsets_point_inside_read():
    for t in iter_tiles(40, 40, 16, 4):
        assert t.read.row_off >= 0 and t.read.col_off >= 0
        assert t.read.row_off + t.read.height <= 40 and t.read.col_off + t.read.width <= 40
        assert t.read.row_off + t.row_off == t.core.row_off
        assert t.read.col_off + t.col_off == t.core.col_off


def test_batches_only_group_equal_shapes():
    for batch in batches(iter_tiles(100, 100, 32, 8), 4):
        assert len(batch) <= 4
        assert len({t.read_shape for t in batch}) == 1
