"""Tests of data.annotations: the defect policy table and hand-computed masks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.annotations import (
    Annotation,
    AnnotationError,
    AnnotationWarning,
    fill_polygon_centres,
    load_annotations,
    rasterize,
)
from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES

SQUARE_0_3 = [[0, 0], [3, 0], [3, 3], [0, 3]]


def _write(tmp_path: Path, document: object, name: str = "image.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _annotation(label: str, points: list) -> Annotation:
    return Annotation(label, np.asarray(points, dtype=np.float64), "test.json")


# --- load_annotations: valid files ---


def test_load_reads_labels_and_points(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "annotations": [
                {"label": "finger-1", "points": SQUARE_0_3, "type": "poly_seg"},
                {"label": "Ulna", "points": [[1.5, 2.25], [4, 2], [4, 5]]},
            ],
            "metadata": {"age": 30},
        },
    )
    annotations = load_annotations(path)
    assert [a.label for a in annotations] == ["finger-1", "Ulna"]
    assert annotations[0].points.dtype == np.float64
    assert annotations[0].points.shape == (4, 2)
    np.testing.assert_array_equal(annotations[1].points, [[1.5, 2.25], [4, 2], [4, 5]])
    assert annotations[0].source == str(path)


def test_load_without_warning_on_clean_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [{"label": c, "points": SQUARE_0_3} for c in CLASSES]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        annotations = load_annotations(path)
    assert len(annotations) == NUM_CLASSES


# --- load_annotations: errors ---


@pytest.mark.parametrize(
    "document, message",
    [
        ([1, 2], "no 'annotations' list"),
        ({"shapes": []}, r"no 'annotations' list \(found \['shapes'\]\)"),
        ({"annotations": {"label": "Ulna"}}, "no 'annotations' list"),
        ({"annotations": ["Ulna"]}, "entry 0: expected an object"),
        ({"annotations": [{"label": "Ulna"}]}, "entry 0: expected an object"),
        ({"annotations": [{"label": "finger-30", "points": SQUARE_0_3}]}, "unknown label 'finger-30'"),
        ({"annotations": [{"label": 7, "points": SQUARE_0_3}]}, "unknown label 7"),
        ({"annotations": [{"label": "Ulna", "points": [[0, 0, 1], [1, 1, 1], [2, 0, 1]]}]}, "points must be"),
        ({"annotations": [{"label": "Ulna", "points": [["0", 0], [1, 1], [2, 0]]}]}, "points must be"),
        ({"annotations": [{"label": "Ulna", "points": [[True, 0], [1, 1], [2, 0]]}]}, "points must be"),
        ({"annotations": [{"label": "Ulna", "points": "0,0 1,1 2,0"}]}, "points must be"),
        ({"annotations": [{"label": "Ulna", "points": [[0, 0], [1, 1], [2e7, 0]]}]}, "beyond"),
    ],
    ids=[
        "top-level-list",
        "no-annotations-key",
        "annotations-object",
        "entry-string",
        "entry-no-points",
        "unknown-label",
        "label-not-string",
        "three-coordinates",
        "string-coordinate",
        "bool-coordinate",
        "points-string",
        "huge-coordinate",
    ],
)
def test_load_invalid_content_raises(tmp_path: Path, document: object, message: str) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(AnnotationError, match=message) as caught:
        load_annotations(path)
    assert str(path) in str(caught.value)


def test_load_unknown_label_lists_valid_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [{"label": "finger1", "points": SQUARE_0_3}]})
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    assert "finger-1, finger-2" in str(caught.value)
    assert "Radius, Ulna" in str(caught.value)


def test_load_nan_coordinate_raises(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text('{"annotations": [{"label": "Ulna", "points": [[NaN, 0], [1, 1], [2, 0]]}]}')
    with pytest.raises(AnnotationError, match="NaN or infinity"):
        load_annotations(path)


def test_load_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(AnnotationError, match="file not found") as caught:
        load_annotations(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"annotations": [', "invalid JSON at line 1"),
        (b"", "invalid JSON"),
        (b'{"annotations": []}\xff', "invalid JSON|utf-8"),
        (b"\xff\xfe\x00garbage", "utf-8"),
    ],
    ids=["truncated", "empty", "trailing-byte", "binary"],
)
def test_load_unreadable_json_raises(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=message) as caught:
        load_annotations(path)
    assert str(path) in str(caught.value)


# --- load_annotations: warnings ---


def test_load_short_polygon_warns_and_skips(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "annotations": [
                {"label": "Lunate", "points": [[0, 0], [3, 3]]},
                {"label": "Ulna", "points": SQUARE_0_3},
            ]
        },
    )
    with pytest.warns(AnnotationWarning, match="'Lunate': polygon has 2 point") as caught:
        annotations = load_annotations(path)
    assert str(path) in str(caught[0].message)
    assert [a.label for a in annotations] == ["Ulna"]


def test_load_nested_points_read_as_polygons(tmp_path: Path) -> None:
    nested = [SQUARE_0_3, [[5, 5], [7, 5], [7, 7], [5, 7]]]
    path = _write(tmp_path, {"annotations": [{"label": "Pisiform", "points": nested}]})
    with pytest.warns(AnnotationWarning, match="'Pisiform': points is a list of 2 point lists"):
        annotations = load_annotations(path)
    assert [a.label for a in annotations] == ["Pisiform", "Pisiform"]
    mask = rasterize(annotations, (8, 8))
    # Two closed 4x4 and 3x3 pixel squares: 16 + 9.
    assert mask[CLASS_INDEX["Pisiform"]].sum() == 25


def test_load_single_wrapped_polygon(tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [{"label": "Radius", "points": [SQUARE_0_3]}]})
    with pytest.warns(AnnotationWarning, match="list of 1 point lists"):
        annotations = load_annotations(path)
    assert len(annotations) == 1
    np.testing.assert_array_equal(annotations[0].points, SQUARE_0_3)


def test_load_repeated_label_warns_and_unions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "annotations": [
                {"label": "Capitate", "points": SQUARE_0_3},
                {"label": "Capitate", "points": [[2, 2], [5, 2], [5, 5], [2, 5]]},
            ]
        },
    )
    with pytest.warns(AnnotationWarning, match="'Capitate' appears 2 times") as caught:
        annotations = load_annotations(path)
    assert str(path) in str(caught[0].message)
    mask = rasterize(annotations, (8, 8))
    # Two 4x4 squares overlapping in a 2x2 square: 16 + 16 - 4.
    assert mask[CLASS_INDEX["Capitate"]].sum() == 28
    assert mask.max() == 1


def test_load_empty_list_warns(tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": []})
    with pytest.warns(AnnotationWarning, match="contains no annotations"):
        assert load_annotations(path) == []


def test_load_float_coordinates_without_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, {"annotations": [{"label": "Hamate", "points": [[0.5, 0.25], [3.75, 0], [2, 3.5]]}]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        annotations = load_annotations(path)
    np.testing.assert_array_equal(annotations[0].points, [[0.5, 0.25], [3.75, 0], [2, 3.5]])


# --- rasterize: hand-computed masks ---


def test_rasterize_shape_dtype_order() -> None:
    annotations = [_annotation("Ulna", SQUARE_0_3), _annotation("finger-1", [[4, 4], [7, 4], [7, 7]])]
    mask = rasterize(annotations, (8, 8))
    assert mask.shape == (NUM_CLASSES, 8, 8)
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert mask[NUM_CLASSES - 1].sum() == 16
    # Closed right triangle with legs of 4 pixels: 4 + 3 + 2 + 1 pixels.
    assert mask[0].sum() == 10
    assert mask[1:NUM_CLASSES - 1].sum() == 0


def test_rasterize_square_8_to_4() -> None:
    # Pixels 0..3 of an 8x8 image are the top-left quarter; at 4x4 they are pixels 0..1.
    mask = rasterize([_annotation("Radius", SQUARE_0_3)], (8, 8), (4, 4))
    expected = np.zeros((4, 4), dtype=np.uint8)
    expected[:2, :2] = 1
    np.testing.assert_array_equal(mask[CLASS_INDEX["Radius"]], expected)
    assert mask.sum() == 4


def test_rasterize_full_size_equals_cv2_fillpoly() -> None:
    rng = np.random.default_rng(3)
    points = rng.integers(0, 64, size=(9, 2))
    expected = np.zeros((64, 64), dtype=np.uint8)
    cv2.fillPoly(expected, [points.astype(np.int32)], 1)
    mask = rasterize([_annotation("Trapezium", points.tolist())], (64, 64))
    np.testing.assert_array_equal(mask[CLASS_INDEX["Trapezium"]], expected)


def test_rasterize_non_square_scaling() -> None:
    # Image 8 high x 16 wide to 4 x 4: x halves twice as fast as y.
    # Rectangle over columns 4..11, rows 0..3 -> columns 1..2, rows 0..1.
    points = [[4, 0], [11, 0], [11, 3], [4, 3]]
    mask = rasterize([_annotation("Lunate", points)], (8, 16), (4, 4))
    expected = np.zeros((4, 4), dtype=np.uint8)
    expected[0:2, 1:3] = 1
    np.testing.assert_array_equal(mask[CLASS_INDEX["Lunate"]], expected)


def test_rasterize_upscale_doubles_square() -> None:
    # Vertices on pixel centres 1 and 2 of a 4x4 image span 1.5..2.5 in continuous units.
    points = [[1, 1], [2, 1], [2, 2], [1, 2]]
    mask = rasterize([_annotation("Scaphoid", points)], (4, 4), (8, 8))
    channel = mask[CLASS_INDEX["Scaphoid"]]
    # Scaled corners: (1 + 0.5) * 2 - 0.5 = 2.5 and 4.5, so centres 3..4 are inside.
    expected = np.zeros((8, 8), dtype=np.uint8)
    expected[3:5, 3:5] = 1
    np.testing.assert_array_equal(channel, expected)


def test_rasterize_overlapping_classes_stay_overlapping() -> None:
    annotations = [
        _annotation("finger-3", SQUARE_0_3),
        _annotation("Trapezium", [[2, 2], [5, 2], [5, 5], [2, 5]]),
    ]
    mask = rasterize(annotations, (8, 8))
    both = mask[CLASS_INDEX["finger-3"]] & mask[CLASS_INDEX["Trapezium"]]
    assert both.sum() == 4
    assert mask.sum(axis=0).max() == 2


def test_rasterize_outside_points_warn_and_clip() -> None:
    # Square from -4 to 3 in both axes: only pixels 0..3 of each axis are in the image.
    annotation = _annotation("Triquetrum", [[-4, -4], [3, -4], [3, 3], [-4, 3]])
    with pytest.warns(AnnotationWarning, match=r"'Triquetrum': 3 of 4 points lie outside") as caught:
        mask = rasterize([annotation], (8, 8))
    assert "test.json" in str(caught[0].message)
    assert mask[CLASS_INDEX["Triquetrum"]].sum() == 16
    with pytest.warns(AnnotationWarning):
        small = rasterize([annotation], (8, 8), (4, 4))
    # Scaled corner 3 -> 1.25: centres 0..1 in each axis.
    assert small[CLASS_INDEX["Triquetrum"]].sum() == 4


def test_rasterize_far_outside_polygon_is_empty() -> None:
    annotation = _annotation("Ulna", [[100, 100], [200, 100], [200, 200]])
    with pytest.warns(AnnotationWarning):
        mask = rasterize([annotation], (8, 8), (4, 4))
    assert mask.sum() == 0


def test_rasterize_points_on_grid_edge_do_not_warn() -> None:
    annotation = _annotation("Ulna", [[-0.5, -0.5], [7.5, -0.5], [7.5, 7.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rasterize([annotation], (8, 8), (4, 4))


def test_rasterize_empty_list_is_zero() -> None:
    mask = rasterize([], (5, 7), (3, 2))
    assert mask.shape == (NUM_CLASSES, 3, 2)
    assert mask.sum() == 0


@pytest.mark.parametrize("size", [(0, 8), (8,), (8.5, 8), "88", (-1, 4), (8, 8, 1)])
def test_rasterize_invalid_size_raises(size) -> None:
    with pytest.raises(ValueError, match="two positive integers"):
        rasterize([], (8, 8), size)
    with pytest.raises(ValueError, match="two positive integers"):
        rasterize([], size, (8, 8))


def test_rasterize_without_image_size_raises() -> None:
    with pytest.raises(ValueError, match="image_size must be two positive integers"):
        rasterize([], None)


def test_rasterize_unknown_label_raises() -> None:
    with pytest.raises(ValueError, match="unknown class label 'Femur'"):
        rasterize([_annotation("Femur", SQUARE_0_3)], (8, 8))


# --- fill_polygon_centres: the pixel-centre rule ---


def test_fill_centres_triangle_counts() -> None:
    # Right triangle (0,0), (6,0), (0,6): row r covers columns 0..6-r, rows 0..5 (half-open
    # rows leave the bottom vertex row 6 out): 7 + 6 + 5 + 4 + 3 + 2 = 27.
    mask = np.zeros((8, 8), dtype=np.uint8)
    fill_polygon_centres(mask, np.array([[0, 0], [6, 0], [0, 6]], dtype=np.float64))
    assert mask.sum() == 27
    assert mask[0].sum() == 7
    assert mask[6].sum() == 0


def test_fill_centres_keeps_existing_pixels() -> None:
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[3, 3] = 1
    fill_polygon_centres(mask, np.array([[0.2, 0.2], [1.8, 0.2], [1.8, 1.8], [0.2, 1.8]]))
    assert mask.sum() == 2
    assert mask[1, 1] == 1
    assert mask[3, 3] == 1


def test_fill_centres_even_odd_hole() -> None:
    # A square ring drawn as one polygon: outer 0..6, inner 2..4 walked back, joined by a seam.
    ring = np.array(
        [[-0.4, -0.4], [6.4, -0.4], [6.4, 6.4], [-0.4, 6.4], [-0.4, -0.4],
         [1.6, 1.6], [1.6, 4.4], [4.4, 4.4], [4.4, 1.6], [1.6, 1.6]],
        dtype=np.float64,
    )
    mask = np.zeros((7, 7), dtype=np.uint8)
    fill_polygon_centres(mask, ring)
    # 7x7 outer square minus the 3x3 hole (centres 2..4).
    assert mask.sum() == 49 - 9
    assert mask[3, 3] == 0


@pytest.mark.parametrize("out", [32, 64, 128])
def test_rasterize_area_tracks_polygon_area(out: int) -> None:
    # A 40-gon of radius 300 px at 1024: the mask area at the small size matches the scaled
    # polygon area to within 15 % of the outline length in pixels. cv2.fillPoly at the small
    # size would add about 27 % (half a pixel along half the outline).
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    points = np.stack([512 + 300 * np.cos(angles), 512 + 300 * np.sin(angles)], axis=1)
    x, y = points[:, 0], points[:, 1]
    area_full = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    expected = area_full * (out / 1024) ** 2
    mask = rasterize([_annotation("Capitate", points.tolist())], (1024, 1024), (out, out))
    perimeter_pixels = 2 * np.pi * 300 * out / 1024
    assert abs(mask.sum() - expected) < 0.15 * perimeter_pixels


@pytest.mark.parametrize(
    "points", [np.zeros((2, 2)), np.zeros((5, 3)), np.zeros(6)], ids=["two-points", "xyz", "flat"]
)
def test_rasterize_malformed_points_raise(points: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"'Ulna' from test.json: points must be an \(N, 2\) array"):
        rasterize([Annotation("Ulna", points, "test.json")], (8, 8))


def test_load_accepts_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    text = json.dumps({"annotations": [{"label": "Ulna", "points": SQUARE_0_3}]})
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert [a.label for a in load_annotations(path)] == ["Ulna"]
