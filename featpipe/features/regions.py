"""Pooling regions over a grid of patch positions: global, quadrants, spatial pyramids.

:class:`RegionLayout` says where each patch position of an image goes when
encodings are sum-pooled over regions (used by
:class:`featpipe.features.words.KMeansWords`): it cuts the regions into
disjoint "atoms" so that every patch is visited once and every region's sum
is a sum of atom sums.
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


class RegionLayout:
    """Where each patch position goes: pooling regions cut into disjoint "atoms".

    Atoms are the cells of the common refinement of every pyramid level, so
    every region is a union of atoms. Patch rows are ordered atom by atom
    (``order``), which makes each atom a contiguous run of rows whose pooled
    sum is one matrix-vector product.
    """

    def __init__(self, levels, grid_shape):
        grid_rows, grid_cols = grid_shape
        if max(levels) > min(grid_rows, grid_cols):
            raise ParameterError(
                f"pyramid level {max(levels)} needs at least {max(levels)}x{max(levels)} patch "
                f"positions; these images give {grid_rows}x{grid_cols}"
            )
        row_edges = [cell_edges(grid_rows, level) for level in levels]
        col_edges = [cell_edges(grid_cols, level) for level in levels]
        atom_row_edges = np.unique(np.concatenate(row_edges))
        atom_col_edges = np.unique(np.concatenate(col_edges))
        rows, cols = np.divmod(np.arange(grid_rows * grid_cols), grid_cols)
        atom_rows = np.searchsorted(atom_row_edges, rows, side="right") - 1
        atom_cols = np.searchsorted(atom_col_edges, cols, side="right") - 1
        position_atom = atom_rows * (len(atom_col_edges) - 1) + atom_cols
        self.n_positions = grid_rows * grid_cols
        self.n_atoms = (len(atom_row_edges) - 1) * (len(atom_col_edges) - 1)
        self.order = np.argsort(position_atom, kind="stable")
        self.position_atom = position_atom[self.order]
        self.atom_bounds = np.concatenate([[0], np.cumsum(np.bincount(position_atom, minlength=self.n_atoms))])
        atom_row_start = atom_row_edges[:-1].repeat(len(atom_col_edges) - 1)
        atom_col_start = np.tile(atom_col_edges[:-1], len(atom_row_edges) - 1)
        membership = []
        for level_rows, level_cols in zip(row_edges, col_edges):
            cell_row = np.searchsorted(level_rows, atom_row_start, side="right") - 1
            cell_col = np.searchsorted(level_cols, atom_col_start, side="right") - 1
            cells = cell_row * (len(level_cols) - 1) + cell_col
            membership.append(cells == np.arange((len(level_rows) - 1) * (len(level_cols) - 1))[:, np.newaxis])
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
