"""The class catalogue: competition order, groups and the overlay palette."""

from __future__ import annotations

import numpy as np
import pytest

from data.classes import CLASS_INDEX, CLASSES, GROUP_OF, GROUPS, NUM_CLASSES, PALETTE, class_index


def test_classes_in_competition_order():
    assert NUM_CLASSES == 29
    assert CLASSES[:19] == tuple(f"finger-{i}" for i in range(1, 20))
    assert CLASSES[19:] == (
        "Trapezium", "Trapezoid", "Capitate", "Hamate", "Scaphoid", "Lunate", "Triquetrum",
        "Pisiform", "Radius", "Ulna",
    )
    assert CLASS_INDEX["finger-1"] == 0
    assert CLASS_INDEX["Ulna"] == 28


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("thumb", ("finger-1", "finger-2", "finger-3")),
        ("index", ("finger-4", "finger-5", "finger-6", "finger-7")),
        ("middle", ("finger-8", "finger-9", "finger-10", "finger-11")),
        ("ring", ("finger-12", "finger-13", "finger-14", "finger-15")),
        ("little", ("finger-16", "finger-17", "finger-18", "finger-19")),
        ("forearm", ("Radius", "Ulna")),
    ],
)
def test_groups_follow_the_finger_numbering(group, expected):
    assert GROUPS[group] == expected


def test_every_class_in_exactly_one_group():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(CLASSES)
    assert len(grouped) == len(set(grouped))
    assert set(GROUP_OF) == set(CLASSES)


def test_palette_has_distinct_visible_colours():
    assert PALETTE.shape == (29, 3)
    assert PALETTE.dtype == np.uint8
    assert len({tuple(colour) for colour in PALETTE}) == 29
    # Every colour differs from gray bone: its channels differ by at least 60 levels.
    spread = PALETTE.max(axis=1).astype(int) - PALETTE.min(axis=1).astype(int)
    assert spread.min() >= 60


def test_unknown_label_lists_valid_ones():
    assert class_index("Lunate") == 24
    with pytest.raises(ValueError, match="unknown class label 'lunate'") as caught:
        class_index("lunate")
    assert "Lunate" in str(caught.value)
