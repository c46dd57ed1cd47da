"""Pooling regions over a grid of patch positions: global, quadrants, spatial pyramids.

:class:`RegionLayout` says where each patch position of an image goes when
encodings are sum-pooled over regions (used by
:class:`featpipe.features.words.KMeansWords` and
:class:`featpipe.features.patches.SoftThresholdPatches`): it cuts the
regions into disjoint "atoms" so that every patch is visited once and every
region's sum is a sum of atom sums.
"""

import numpy as np

from featpipe.errors import ParameterError
from featpipe.features.base import is_whole_number


def pyramid_levels(pooling):
    """Pooling parameter -> tuple of pyramid levels; ValueError if invalid."""
    if isinstance(pooling, str):
        if pooling == "global":
            return (1,)
        if pooling == "quadrants":
            return (2,)
        raise ParameterError(f'pooling must be "global", "quadrants" or a tuple of levels; got {pooling!r}')
    try:
        levels = tuple(pooling)
    except TypeError:
        raise ParameterError(f'pooling must be "global", "quadrants" or a tuple of levels; got {pooling!r}') from None
    if not levels or not all(is_whole_number(level) and level >= 1 for level in levels):
        raise ParameterError(f"pyramid levels must be a non-empty tuple of positive integers; got {pooling!r}")
    return levels


def cell_edges(n_positions, n_cells):
    """Edges cutting ``n_positions`` into ``n_cells`` runs, the first ones longer by one."""
    sizes = n_positions // n_cells + (np.arange(n_cells) < n_positions % n_cells)
    return np.concatenate([[0], np.cumsum(sizes)])


def cell_bounds(n_positions, n_cells, symmetric=False):
    """(starts, stops) of ``n_cells`` runs covering ``n_positions`` positions.

    Without ``symmetric`` the runs cut the positions (:func:`cell_edges`).
    With it, run ``i`` is ``[floor(i n / L), ceil((i + 1) n / L))``: the
    same cut when ``L`` divides ``n``, else neighbouring runs share the
    position they would split, so the runs are their own mirror image
    (run ``i`` reversed is run ``L - 1 - i``).
    """
    if not symmetric:
        edges = cell_edges(n_positions, n_cells)
        return edges[:-1], edges[1:]
    cells = np.arange(n_cells)
    return (cells * n_positions) // n_cells, -((-(cells + 1) * n_positions) // n_cells)


def mirrored_regions(levels):
    """Region permutation of a left-right mirror: region ``r`` of a mirrored image is region ``result[r]``.

    Regions are numbered level by level, cells row-major, as in
    :class:`RegionLayout`; valid for symmetric cells.
    """
    result, offset = [], 0
    for level in levels:
        cells = np.arange(level * level).reshape(level, level)
        result.append(offset + cells[:, ::-1].ravel())
        offset += level * level
    return np.concatenate(result)


class RegionLayout:
    """Where each patch position goes: pooling regions cut into disjoint "atoms".

    Atoms are the cells of the common refinement of every pyramid level, so
    every region is a union of atoms. Patch rows are ordered atom by atom
    (``order``), which makes each atom a contiguous run of rows whose pooled
    sum is one matrix-vector product. ``symmetric=True`` takes the cells of
    :func:`cell_bounds` that are their own mirror image (neighbouring cells
    may share a row or column of positions).
    """

    def __init__(self, levels, grid_shape, symmetric=False):
        grid_rows, grid_cols = grid_shape
        if max(levels) > min(grid_rows, grid_cols):
            raise ParameterError(
                f"pyramid level {max(levels)} needs at least {max(levels)}x{max(levels)} patch "
                f"positions; these images give {grid_rows}x{grid_cols}"
            )
        row_cells = [cell_bounds(grid_rows, level, symmetric) for level in levels]
        col_cells = [cell_bounds(grid_cols, level, symmetric) for level in levels]
        row_edges = np.unique(np.concatenate([np.concatenate(cells) for cells in row_cells]))
        col_edges = np.unique(np.concatenate([np.concatenate(cells) for cells in col_cells]))
        rows, cols = np.divmod(np.arange(grid_rows * grid_cols), grid_cols)
        atom_rows = np.searchsorted(row_edges, rows, side="right") - 1
        atom_cols = np.searchsorted(col_edges, cols, side="right") - 1
        n_atom_rows, n_atom_cols = len(row_edges) - 1, len(col_edges) - 1
        position_atom = atom_rows * n_atom_cols + atom_cols
        self.n_positions = grid_rows * grid_cols
        self.n_atoms = n_atom_rows * n_atom_cols
        self.order = np.argsort(position_atom, kind="stable")
        self.position_atom = position_atom[self.order]
        self.atom_bounds = np.concatenate([[0], np.cumsum(np.bincount(position_atom, minlength=self.n_atoms))])
        membership = []
        for (row_starts, row_stops), (col_starts, col_stops) in zip(row_cells, col_cells):
            in_rows = (row_starts[:, None] <= row_edges[:-1]) & (row_edges[1:] <= row_stops[:, None])
            in_cols = (col_starts[:, None] <= col_edges[:-1]) & (col_edges[1:] <= col_stops[:, None])
            cells = in_rows[:, None, :, None] & in_cols[None, :, None, :]
            membership.append(cells.reshape(len(row_starts) * len(col_starts), self.n_atoms))
        self.atom_region = np.concatenate(membership).astype(np.float32)
        self.n_regions = len(self.atom_region)
        self.region_sizes = self.atom_region @ np.diff(self.atom_bounds).astype(np.float32)

    def pieces(self, max_size):
        """(start, stop, atom) runs of at most ``max_size`` rows covering every atom."""
        pieces = []
        for atom, (start, stop) in enumerate(zip(self.atom_bounds[:-1], self.atom_bounds[1:])):
            edges = start + cell_edges(stop - start, -(-(stop - start) // max_size))
            pieces.extend((int(a), int(b), atom) for a, b in zip(edges[:-1], edges[1:]))
        return pieces
