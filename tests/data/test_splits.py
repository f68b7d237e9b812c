"""Tests of data.splits: grouping, balance, determinism, the split file and its validation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data.layout import LayoutError, Sample, discover
from data.splits import (
    FORMAT_VERSION,
    SplitError,
    fold_image_names,
    make_splits,
    read_splits,
    select_fold,
    write_splits,
)


def _samples(images_per_patient: dict[str, int]) -> list[Sample]:
    return [
        Sample(f"{patient}_{k}.png", Path(f"/data/{patient}_{k}.png"), None, patient)
        for patient, count in images_per_patient.items()
        for k in range(count)
    ]


def _hands(n_patients: int) -> list[Sample]:
    return _samples({f"ID{i:03d}": 2 for i in range(n_patients)})


def test_make_splits_format() -> None:
    splits = make_splits(_hands(10), n_folds=5, seed=0)
    assert splits["format_version"] == FORMAT_VERSION == 1
    assert splits["n_folds"] == 5
    assert splits["seed"] == 0
    assert len(splits["patients"]) == 10
    assert len(splits["images"]) == 20
    assert set(splits["images"].values()) == set(range(5))
    json.dumps(splits)


def test_make_splits_keeps_patients_together() -> None:
    samples = _hands(23)
    splits = make_splits(samples, n_folds=5, seed=1)
    for sample in samples:
        assert splits["images"][sample.image_name] == splits["patients"][sample.patient_id]


@pytest.mark.parametrize(
    "images_per_patient, n_folds, expected_sizes",
    [
        ({f"P{i}": 2 for i in range(10)}, 5, [4, 4, 4, 4, 4]),
        ({f"P{i}": 2 for i in range(11)}, 5, [6, 4, 4, 4, 4]),
        ({f"P{i}": 1 for i in range(7)}, 3, [3, 2, 2]),
        # One large patient (6) and six single images: the large one fills its own fold.
        ({"BIG": 6, **{f"P{i}": 1 for i in range(6)}}, 2, [6, 6]),
    ],
    ids=["even", "one-extra-patient", "single-images", "uneven-patients"],
)
def test_make_splits_balances_image_counts(
    images_per_patient: dict[str, int], n_folds: int, expected_sizes: list[int]
) -> None:
    splits = make_splits(_samples(images_per_patient), n_folds=n_folds, seed=0)
    sizes = sorted(Counter(splits["images"].values()).values(), reverse=True)
    assert sizes == expected_sizes


def test_make_splits_deterministic_and_order_free() -> None:
    samples = _hands(20)
    first = make_splits(samples, n_folds=4, seed=7)
    again = make_splits(list(reversed(samples)), n_folds=4, seed=7)
    assert first == again


def test_make_splits_seed_changes_assignment() -> None:
    samples = _hands(20)
    assignments = {
        tuple(make_splits(samples, n_folds=4, seed=seed)["patients"].values()) for seed in range(5)
    }
    assert len(assignments) > 1


@pytest.mark.parametrize("n_folds", [1, 0, -2, 2.0, "5", True])
def test_make_splits_invalid_n_folds_raises(n_folds) -> None:
    with pytest.raises(SplitError, match="n_folds must be an integer >= 2"):
        make_splits(_hands(6), n_folds=n_folds)


def test_make_splits_more_folds_than_patients_raises() -> None:
    with pytest.raises(SplitError, match=r"n_folds=5 is larger than the number of patients \(4\)"):
        make_splits(_hands(4), n_folds=5)


def test_make_splits_empty_raises() -> None:
    with pytest.raises(SplitError, match="empty"):
        make_splits([], n_folds=2)


def test_make_splits_duplicate_names_raise() -> None:
    samples = _hands(3) + [Sample("ID000_0.png", Path("/other/ID000_0.png"), None, "ID999")]
    with pytest.raises(LayoutError, match="share the file name"):
        make_splits(samples, n_folds=2)


def test_write_read_round_trip(tmp_path: Path) -> None:
    splits = make_splits(_hands(6), n_folds=3, seed=2)
    path = write_splits(tmp_path / "nested" / "splits.json", splits)
    assert path.is_file()
    assert read_splits(path) == splits
    assert [p.name for p in path.parent.iterdir()] == ["splits.json"]


def test_write_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    write_splits(path, make_splits(_hands(6), n_folds=3, seed=0))
    second = make_splits(_hands(8), n_folds=2, seed=1)
    write_splits(path, second)
    assert read_splits(path) == second


def test_write_invalid_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    splits = make_splits(_hands(6), n_folds=3, seed=0)
    write_splits(path, splits)
    with pytest.raises(SplitError, match="format_version"):
        write_splits(path, {**splits, "format_version": 2})
    assert read_splits(path) == splits
    assert len(list(tmp_path.iterdir())) == 1


def _valid() -> dict:
    return make_splits(_hands(4), n_folds=2, seed=0)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.update(format_version=2), "format_version is 2, expected 1"),
        (lambda s: s.pop("format_version"), "format_version is None"),
        (lambda s: s.pop("images"), r"missing keys \['images'\]"),
        (lambda s: s.update(n_folds=1), "n_folds must be an integer >= 2"),
        (lambda s: s.update(n_folds="2"), "n_folds must be an integer >= 2"),
        (lambda s: s.update(seed=None), "seed must be an integer"),
        (lambda s: s.update(patients=[]), "'patients' must be a non-empty object"),
        (lambda s: s.update(images={}), "'images' must be a non-empty object"),
        (lambda s: s["images"].update({"ID000_0.png": 2}), r"images\['ID000_0.png'\] = 2"),
        (lambda s: s["patients"].update({"ID000": -1}), r"patients\['ID000'\] = -1"),
        (lambda s: s.update(n_folds=3), r"folds \[2\] hold no image"),
    ],
    ids=[
        "version", "no-version", "no-images", "one-fold", "string-folds", "seed",
        "patients-list", "images-empty", "fold-too-large", "fold-negative", "empty-fold",
    ],
)
def test_read_invalid_shape_raises(tmp_path: Path, change, message: str) -> None:
    splits = _valid()
    change(splits)
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(splits))
    with pytest.raises(SplitError, match=message) as caught:
        read_splits(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content, message",
    [(None, "not found"), ("{", "not valid JSON"), ("[1, 2]", "expected a JSON object")],
    ids=["missing", "broken", "list"],
)
def test_read_unreadable_file_raises(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "splits.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SplitError, match=message):
        read_splits(path)


def test_fold_image_names_partition() -> None:
    splits = make_splits(_hands(6), n_folds=3, seed=0)
    all_names = sorted(splits["images"])
    seen_val: list[str] = []
    for fold in range(3):
        train_names, val_names = fold_image_names(splits, fold)
        assert sorted(train_names + val_names) == all_names
        assert not set(train_names) & set(val_names)
        assert len(val_names) == 4
        assert train_names == sorted(train_names)
        seen_val += val_names
    assert sorted(seen_val) == all_names


def test_fold_image_names_hand_made() -> None:
    splits = {
        "format_version": 1, "n_folds": 2, "seed": 0,
        "patients": {"A": 0, "B": 1},
        "images": {"a1.png": 0, "b1.png": 1, "a2.png": 0},
    }
    assert fold_image_names(splits, 0) == (["b1.png"], ["a1.png", "a2.png"])
    assert fold_image_names(splits, 1) == (["a1.png", "a2.png"], ["b1.png"])


@pytest.mark.parametrize("fold", [-1, 3, 1.0, None])
def test_fold_image_names_bad_fold_raises(fold) -> None:
    with pytest.raises(SplitError, match=r"fold must be an integer in 0..2"):
        fold_image_names(make_splits(_hands(6), n_folds=3), fold)


def test_select_fold_keeps_order_and_checks_names() -> None:
    samples = _hands(6)
    splits = make_splits(samples, n_folds=3, seed=0)
    train, val = select_fold(samples, splits, 1)
    assert [s.image_name for s in val] == fold_image_names(splits, 1)[1]
    assert len(train) + len(val) == len(samples)
    assert [s for s in samples if s in train] == train

    stranger = Sample("new.png", Path("/data/new.png"), None, "ID999")
    with pytest.raises(SplitError, match=r"1 image\(s\) missing from the split \(first: \['new.png'\]\)"):
        select_fold(samples + [stranger], splits, 0)


def test_splits_of_synthetic_dataset(synthetic_dataset: Path, tmp_path: Path) -> None:
    train = discover(synthetic_dataset).train
    splits = make_splits(train, n_folds=2, seed=0)
    path = write_splits(tmp_path / "splits.json", splits)
    loaded = read_splits(path)
    for fold in range(2):
        train_names, val_names = fold_image_names(loaded, fold)
        assert len(val_names) == 4
        assert len(train_names) == 4
    patients_per_fold = Counter(loaded["patients"].values())
    assert patients_per_fold == {0: 2, 1: 2}
