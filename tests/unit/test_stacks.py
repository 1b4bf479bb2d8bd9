"""Stacks on hand-made manifests: which granules share a time axis, how stacks are named, and
the one model written for a store of several."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gcov_index.index.stacks import group_stacks, merge_stacks

from .manifests import GRID, layer, manifest


def _partial(t: int):
    """A partial frame of the same track and frame: fewer lines, so another grid."""
    y = 4000000.0 - np.arange(4, dtype="<f8") * 20
    return manifest(t, y=y, hhhh=layer(t, shape=(4, 4)))


def _other_frame(t: int):
    m = manifest(t)
    return replace(m, granule=replace(m.granule, frame=9))


def test_one_stack_when_grids_agree():
    (st,) = group_stacks([manifest(t) for t in range(3)])
    assert (st.id, st.group, len(st.manifests)) == ("T172A_F008", "", 3)
    tree, _ = merge_stacks([manifest(t) for t in range(3)])
    assert f"{GRID}/HHHH" in tree.arrays  # the product's layout at the root


def test_a_grid_difference_starts_another_stack_of_the_same_frame():
    ms = [manifest(0), _partial(1), manifest(2), _partial(3), manifest(4)]
    stacks = group_stacks(ms)
    assert [(s.id, len(s.manifests)) for s in stacks] == [("T172A_F008", 3), ("T172A_F008_2", 2)]
    assert [s.group for s in stacks] == ["T172A_F008", "T172A_F008_2"]
    assert stacks[1].grids["frequencyA"].shape == (4, 4)
    assert sum(len(s.manifests) for s in stacks) == len(ms)  # none dropped


def test_other_frames_and_epsg_are_other_stacks():
    stacks = group_stacks([manifest(0), _other_frame(1), manifest(2, epsg=32612)])
    assert sorted(s.id for s in stacks) == ["T172A_F008", "T172A_F008_2", "T172A_F009"]


def test_a_chunk_layout_difference_is_another_stack_not_a_refusal():
    odd = manifest(1, hhhh=layer(1, chunks=(3, 2)))
    stacks = group_stacks([manifest(0), odd])
    assert len(stacks) == 2


def test_several_stacks_nest_under_their_groups_with_urls_in_order():
    ms = [manifest(0), _partial(1), manifest(2)]
    tree, stacks = merge_stacks(ms)
    assert tree.urls == [m.url for s in stacks for m in s.manifests]
    a = tree.arrays[f"T172A_F008_2/{GRID}/HHHH"]
    refs = [v for v in a.chunks_ref.values() if isinstance(v, tuple)]
    assert {r[0] for r in refs} == {2}  # the partial frame is URL 2, after the first stack's two
    assert f"T172A_F008/{GRID}/HHHH" in tree.arrays and f"{GRID}/HHHH" not in tree.arrays
    assert "T172A_F008_2/science/LSAR/identification" in tree.groups
    d = stacks[0].describe()
    assert d["granules"] == 2 and d["maturity"] == {"BETA": 2} and d["coverage"] == "full"


def test_mixed_maturity_is_a_warning():
    stacks = group_stacks([manifest(0), manifest(1, crid="P05023")])
    assert "mixes data maturities (1 BETA, 1 PROVISIONAL)" in stacks[0].mixed_maturity


def test_a_table_inlined_in_one_granule_and_referenced_in_another_is_another_stack():
    """Under the inline limit in one granule, over it in the next: they cannot share a time
    axis (merging them failed), so they are two stacks, not a refusal."""
    from .manifests import arr

    inlined = manifest(0, extra={f"{GRID}/table": arr(f"{GRID}/table", np.zeros((2, 2)))})
    referenced = manifest(1, extra={f"{GRID}/table": layer(1, path=f"{GRID}/table")})
    stacks = group_stacks([inlined, referenced])
    assert len(stacks) == 2
    tree, _ = merge_stacks([inlined, referenced])
    assert len(tree.urls) == 2
