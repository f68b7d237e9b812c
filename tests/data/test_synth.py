"""Tests of the synthetic hand generator: layout, determinism, anatomy and appearance."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import data.synth as synth
from data.annotations import load_annotations, rasterize
from data.classes import CLASSES, GROUPS
from data.layout import discover
from data.synth_anatomy import LENGTH_RATIO_MODEL, sample_anatomy
from data.synth_pose import WRIST_BEND_RANGE, sample_pose
from data.synth_shapes import build_hand

SIZE = 128

# Landmark index pairs (start, end) of each finger bone in the hand-landmark CSV. Landmarks 13-17
# are the bases of metacarpals 5 to 1, and 18-20 the thumb's MCP, IP and tip. The index, middle,
# ring and little fingers have MCP, PIP, DIP and tip at 21-24, 25-28, 29-32 and 33-36.
LANDMARK_BONES: dict[str, tuple[int, int]] = {
    "finger-1": (19, 20), "finger-2": (18, 19), "finger-3": (17, 18),
    "finger-4": (23, 24), "finger-5": (22, 23), "finger-6": (21, 22), "finger-7": (16, 21),
    "finger-8": (27, 28), "finger-9": (26, 27), "finger-10": (25, 26), "finger-11": (15, 25),
    "finger-12": (31, 32), "finger-13": (30, 31), "finger-14": (29, 30), "finger-15": (14, 29),
    "finger-16": (35, 36), "finger-17": (34, 35), "finger-18": (33, 34), "finger-19": (13, 33),
}

# Bone pairs the generator places so that they overlap in projection in (nearly) every image.
ALWAYS_OVERLAPPING = [
    ("Triquetrum", "Pisiform"),
    ("Radius", "Ulna"),
    ("Capitate", "Hamate"),
    ("Trapezium", "Trapezoid"),
    ("Lunate", "Triquetrum"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset: 8 training images (4 patients) and 2 test images at 128 px."""
    root = tmp_path_factory.mktemp("synth") / "hands"
    synth.generate_dataset(root, n_train=8, n_test=2, size=SIZE, seed=0)
    return root


@pytest.fixture(scope="module")
def many_hands(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, np.ndarray]]:
    """Polygons of 80 training images (40 patients) read back from the written JSON files."""
    root = tmp_path_factory.mktemp("synth_many") / "hands"
    synth.generate_dataset(root, n_train=80, n_test=0, size=SIZE, seed=1)
    hands = []
    for json_path in sorted((root / "train" / "outputs_json").glob("*/*.json")):
        entries = json.loads(json_path.read_text(encoding="utf-8"))["annotations"]
        hands.append({e["label"]: np.array(e["points"], dtype=np.float64) for e in entries})
    return hands


def principal_axis_length(points: np.ndarray) -> float:
    """Extent of a polygon's vertices along their first principal axis."""
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    projected = centred @ vectors[:, -1]
    return float(projected.max() - projected.min())


def axis_angle_deg(first: np.ndarray, second: np.ndarray) -> float:
    """Unsigned angle in degrees between the principal axes of two polygons."""
    axes = []
    for points in (first, second):
        centred = points - points.mean(axis=0)
        axes.append(np.linalg.eigh(centred.T @ centred)[1][:, -1])
    cosine = abs(float(np.dot(axes[0], axes[1])))
    return float(np.degrees(np.arccos(min(cosine, 1.0))))


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.rint(points).astype(np.int32)], 1)
    return mask


def test_layout_folders_and_names(dataset: Path) -> None:
    train_pngs = sorted((dataset / "train" / "DCM").glob("*/*.png"))
    train_jsons = sorted((dataset / "train" / "outputs_json").glob("*/*.json"))
    test_pngs = sorted((dataset / "test" / "DCM").glob("*/*.png"))
    assert len(train_pngs) == 8
    assert len(train_jsons) == 8
    assert len(test_pngs) == 2
    assert not (dataset / "test" / "outputs_json").exists()

    names = [p.name for p in train_pngs + test_pngs]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"image\d{13}\.png", name), name
    assert {(p.parent.name, p.stem) for p in train_pngs} == {
        (p.parent.name, p.stem) for p in train_jsons
    }

    train_ids = sorted({p.parent.name for p in train_pngs})
    test_ids = sorted({p.parent.name for p in test_pngs})
    assert train_ids == ["ID000", "ID001", "ID002", "ID003"]
    assert test_ids == ["ID004"]


def test_images_are_8bit_grayscale(dataset: Path) -> None:
    for path in sorted(dataset.glob("*/DCM/*/*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert image is not None, path
        assert image.dtype == np.uint8
        assert image.shape == (SIZE, SIZE)


def test_json_has_every_class_once(dataset: Path) -> None:
    for path in sorted((dataset / "train" / "outputs_json").glob("*/*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))["annotations"]
        assert [e["label"] for e in entries] == list(CLASSES)
        for entry in entries:
            points = np.array(entry["points"], dtype=np.float64)
            assert points.ndim == 2, entry["label"]
            assert points.shape[1] == 2, entry["label"]
            assert len(points) >= 8, entry["label"]
            assert points.min() >= -0.5, entry["label"]
            assert points.max() <= SIZE - 0.5, entry["label"]


def test_readers_load_generated_dataset(dataset: Path) -> None:
    index = discover(dataset)
    assert len(index.train) == 8
    assert len(index.test) == 2
    assert index.problems == []

    masks = rasterize(load_annotations(index.train[0].json_path), (SIZE, SIZE))
    assert masks.shape == (len(CLASSES), SIZE, SIZE)
    assert (masks.reshape(len(CLASSES), -1).sum(axis=1) > 0).all()


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth.generate_dataset(first, n_train=2, n_test=2, size=96, seed=5)
    synth.generate_dataset(second, n_train=2, n_test=2, size=96, seed=5, workers=2)
    synth.generate_dataset(other, n_train=2, n_test=2, size=96, seed=6)

    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 6
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative

    other_pngs = sorted(other.rglob("*.png"))
    first_pngs = sorted(first.rglob("*.png"))
    assert other_pngs[0].read_bytes() != first_pngs[0].read_bytes()


@pytest.mark.parametrize(
    ("n_train", "n_test", "message"),
    [
        (3, 2, "n_train=3"),
        (2, 1, "n_test=1"),
        (-2, 2, "n_train=-2"),
        (0, 0, "both 0"),
    ],
)
def test_bad_counts_rejected(tmp_path: Path, n_train: int, n_test: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synth.generate_dataset(tmp_path / "out", n_train, n_test, size=64)
    assert not (tmp_path / "out").exists()


def test_nonempty_output_rejected(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("existing data", encoding="utf-8")
    with pytest.raises(ValueError, match="not empty"):
        synth.generate_dataset(out, 2, 0, size=64)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_empty_output_folder_accepted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    synth.generate_dataset(out, 2, 0, size=64)
    assert len(list(out.rglob("*.png"))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = synth._write_image_task
    calls = []

    def write_then_fail(task: synth.ImageTask, root: Path) -> None:
        calls.append(task)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(task, root)

    monkeypatch.setattr(synth, "_write_image_task", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(tmp_path / "out", 4, 0, size=64)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_dataset(tmp_path: Path) -> None:
    status = synth.main([str(tmp_path / "out"), "--train", "2", "--test", "2", "--size", "64"])
    assert status == 0
    assert len(list((tmp_path / "out").rglob("*.png"))) == 4
    assert len(list((tmp_path / "out").rglob("*.json"))) == 2


def test_cli_rejects_odd_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        synth.main([str(tmp_path / "out"), "--train", "3", "--size", "64"])
    assert raised.value.code == 2
    assert "even number" in capsys.readouterr().err


def test_ratio_model_matches_landmarks(hand_landmarks_csv: Path) -> None:
    rows = np.loadtxt(hand_landmarks_csv, delimiter=",")
    landmarks = rows[:, 1:].reshape(len(rows), 37, 2)
    lengths = {
        label: np.linalg.norm(landmarks[:, end] - landmarks[:, start], axis=1)
        for label, (start, end) in LANDMARK_BONES.items()
    }
    for label, (mean_log, _, _, low, high) in LENGTH_RATIO_MODEL.items():
        ratios = lengths[label] / lengths["finger-11"]
        assert np.log(ratios).mean() == pytest.approx(mean_log, abs=1e-3), label
        assert np.percentile(ratios, 0.5) == pytest.approx(low, abs=2e-3), label
        assert np.percentile(ratios, 99.5) == pytest.approx(high, abs=2e-3), label


def test_bone_ratios_within_real_range(
    many_hands: list[dict[str, np.ndarray]], hand_landmarks_csv: Path
) -> None:
    rows = np.loadtxt(hand_landmarks_csv, delimiter=",")
    landmarks = rows[:, 1:].reshape(len(rows), 37, 2)
    lengths = {
        label: np.linalg.norm(landmarks[:, end] - landmarks[:, start], axis=1)
        for label, (start, end) in LANDMARK_BONES.items()
    }
    real = {label: lengths[label] / lengths["finger-11"] for label in LANDMARK_BONES}

    inside = []
    for hand in many_hands:
        reference = principal_axis_length(hand["finger-11"])
        checks = [
            real[label].min() <= principal_axis_length(hand[label]) / reference <= real[label].max()
            for label in LANDMARK_BONES
        ]
        inside.append(all(checks))
    assert np.mean(inside) >= 0.95


def test_left_and_right_hands_are_mirrored(many_hands: list[dict[str, np.ndarray]]) -> None:
    # Images alternate left, right within each patient; a left PA hand has its thumb on the right.
    for index, hand in enumerate(many_hands[:20]):
        thumb_x = hand["finger-3"][:, 0].mean()
        little_x = hand["finger-19"][:, 0].mean()
        if index % 2 == 0:
            assert thumb_x > little_x, index
        else:
            assert thumb_x < little_x, index


def test_both_hands_share_proportions(tmp_path: Path) -> None:
    synth.generate_dataset(tmp_path / "out", 2, 0, size=256, seed=3)
    hands = []
    for path in sorted((tmp_path / "out" / "train" / "outputs_json").glob("*/*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))["annotations"]
        hands.append({e["label"]: np.array(e["points"]) for e in entries})
    left, right = hands
    for label in GROUPS["index"] + GROUPS["thumb"]:
        left_ratio = principal_axis_length(left[label]) / principal_axis_length(left["finger-11"])
        right_ratio = principal_axis_length(right[label]) / principal_axis_length(right["finger-11"])
        assert left_ratio == pytest.approx(right_ratio, abs=0.01), label


def test_radius_on_thumb_side(many_hands: list[dict[str, np.ndarray]]) -> None:
    for index, hand in enumerate(many_hands):
        thumb = hand["finger-3"].mean(axis=0)
        radius = np.linalg.norm(hand["Radius"].mean(axis=0) - thumb)
        ulna = np.linalg.norm(hand["Ulna"].mean(axis=0) - thumb)
        assert radius < ulna, index


def test_rays_run_from_tip_to_wrist(many_hands: list[dict[str, np.ndarray]]) -> None:
    # Within each ray, bones listed fingertip first lie ever closer to the capitate.
    for index, hand in enumerate(many_hands):
        capitate = hand["Capitate"].mean(axis=0)
        for ray in ("thumb", "index", "middle", "ring", "little"):
            distances = [np.linalg.norm(hand[b].mean(axis=0) - capitate) for b in GROUPS[ray]]
            assert distances == sorted(distances, reverse=True), (index, ray)


def test_carpal_rows_in_order(many_hands: list[dict[str, np.ndarray]]) -> None:
    # The distal carpal row lies nearer the metacarpals than the proximal row.
    distal = ("Trapezium", "Trapezoid", "Capitate", "Hamate")
    proximal = ("Scaphoid", "Lunate", "Triquetrum")
    for index, hand in enumerate(many_hands):
        middle_base = hand["finger-11"].mean(axis=0)
        distal_distance = np.mean([np.linalg.norm(hand[b].mean(0) - middle_base) for b in distal])
        proximal_distance = np.mean(
            [np.linalg.norm(hand[b].mean(0) - middle_base) for b in proximal]
        )
        assert distal_distance < proximal_distance, index


@pytest.mark.parametrize(("first", "second"), ALWAYS_OVERLAPPING)
def test_pairs_overlap_nearly_always(
    many_hands: list[dict[str, np.ndarray]], first: str, second: str
) -> None:
    overlapping = [
        (polygon_mask(hand[first], SIZE) & polygon_mask(hand[second], SIZE)).any()
        for hand in many_hands
    ]
    assert np.mean(overlapping) >= 0.95


@pytest.mark.parametrize("split", ["train", "test"])
def test_wrist_bend_share_by_split(split: str) -> None:
    probability = synth.WRIST_BEND_PROBABILITY[split]
    rng = np.random.default_rng(0)
    bends = np.array([sample_pose(rng, "L", probability).wrist_bend for _ in range(1000)])
    bent = np.abs(bends) >= WRIST_BEND_RANGE[0]
    assert bent.mean() == pytest.approx(probability, abs=0.05)
    assert np.abs(bends[~bent]).max() <= 6.0
    assert np.abs(bends[bent]).max() <= WRIST_BEND_RANGE[1]


def test_wrist_bend_turns_hand_not_forearm() -> None:
    anatomy = sample_anatomy(np.random.default_rng(0))
    straight, _ = build_hand(anatomy, spread=1.0, thumb_abduction=0.0, wrist_bend=0.0)
    bent, _ = build_hand(anatomy, spread=1.0, thumb_abduction=0.0, wrist_bend=25.0)
    straight_polygons = {bone.label: bone.polygon for bone in straight}
    bent_polygons = {bone.label: bone.polygon for bone in bent}

    np.testing.assert_allclose(bent_polygons["Radius"], straight_polygons["Radius"])
    np.testing.assert_allclose(bent_polygons["Ulna"], straight_polygons["Ulna"])
    for label in ("finger-11", "finger-3", "Capitate"):
        angle = axis_angle_deg(bent_polygons[label], straight_polygons[label])
        assert angle == pytest.approx(25.0, abs=0.5), label


def test_bone_brighter_than_tissue_than_background() -> None:
    size = 256
    image, annotations = synth.synthesize_image(0, 0, "L", size, 0.0)
    bones = np.zeros((size, size), np.uint8)
    for annotation in annotations:
        bones |= polygon_mask(np.array(annotation["points"]), size)
    inner_bone = cv2.erode(bones, np.ones((3, 3), np.uint8))
    near = (cv2.dilate(bones, np.ones((5, 5), np.uint8)) > 0) & (cv2.dilate(bones, np.ones((3, 3), np.uint8)) == 0)
    far = cv2.dilate(bones, np.ones((61, 61), np.uint8)) == 0
    far[: size // 5] = False  # the side marker sits in a corner
    far[-size // 5 :] = False

    bone_level = np.median(image[inner_bone > 0])
    tissue_level = np.median(image[near])
    background_level = np.median(image[far])
    assert bone_level > tissue_level + 20
    assert tissue_level > background_level + 20
