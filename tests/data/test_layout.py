"""Tests of data.layout: discovery, pairing, orphans, bad roots, duplicates, list_images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from data.layout import DatasetIndex, LayoutError, Sample, discover, list_images


def test_discover_pairs_train_and_lists_test(competition_root: Path) -> None:
    index = discover(competition_root)
    assert isinstance(index, DatasetIndex)
    assert [s.image_name for s in index.train] == [
        "ID001_0.png", "ID001_1.png", "ID002_0.png", "ID002_1.png", "ID003_0.png", "ID003_1.png",
    ]
    assert [s.patient_id for s in index.train] == ["ID001", "ID001", "ID002", "ID002", "ID003", "ID003"]
    assert [s.image_name for s in index.test] == ["ID100_test0.png", "ID100_test1.png"]
    assert index.problems == []

    first = index.train[0]
    assert first.image_path == competition_root / "train" / "DCM" / "ID001" / "ID001_0.png"
    assert first.json_path == competition_root / "train" / "outputs_json" / "ID001" / "ID001_0.json"
    assert first.image_path.is_absolute()
    assert all(s.json_path is None for s in index.test)


def test_discover_accepts_relative_root(competition_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(competition_root.parent)
    index = discover(competition_root.name)
    assert index.train[0].image_path.is_absolute()
    assert index.train[0].image_path.is_file()


def test_sample_is_frozen() -> None:
    sample = Sample("a.png", Path("/x/a.png"), None, "ID001")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.image_name = "b.png"  # type: ignore[misc]


def test_discover_is_sorted_and_deterministic(tmp_path: Path, files) -> None:
    root = files.make_competition_root(tmp_path / "r", {"ID010": 1, "ID002": 2, "ID100": 1})
    first = discover(root)
    second = discover(root)
    assert first == second
    keys = [(s.patient_id, s.image_name) for s in first.train]
    assert keys == sorted(keys)


def test_discover_orphans_reported_and_left_out(competition_root: Path, files) -> None:
    files.write_image(competition_root / "train" / "DCM" / "ID001" / "lonely.png")
    files.write_json(competition_root / "train" / "outputs_json" / "ID002" / "ghost.json", [])
    files.write_json(competition_root / "train" / "outputs_json" / "ID077" / "ID077_0.json", [])

    index = discover(competition_root)
    names = [s.image_name for s in index.train]
    assert "lonely.png" not in names
    assert len(names) == 6
    assert len(index.problems) == 3
    text = "\n".join(index.problems)
    assert "image without annotation" in text
    assert str(competition_root / "train" / "DCM" / "ID001" / "lonely.png") in text
    assert str(competition_root / "train" / "outputs_json" / "ID002" / "ghost.json") in text
    assert str(competition_root / "train" / "outputs_json" / "ID077" / "ID077_0.json") in text


def test_discover_pairs_by_patient_folder(competition_root: Path) -> None:
    # The JSON of ID001_0 moved to another patient's folder: neither pairs any more.
    json_dir = competition_root / "train" / "outputs_json"
    (json_dir / "ID001" / "ID001_0.json").rename(json_dir / "ID002" / "ID001_0.json")
    index = discover(competition_root)
    assert "ID001_0.png" not in [s.image_name for s in index.train]
    assert len(index.problems) == 2


def test_discover_stray_files_reported(competition_root: Path, files) -> None:
    dcm = competition_root / "train" / "DCM"
    files.write_image(dcm / "loose.png")
    (dcm / "ID001" / "notes.txt").write_text("scan notes")
    (dcm / "ID001" / "nested").mkdir()
    (dcm / "ID001" / ".DS_Store").write_bytes(b"\0")
    (dcm / ".hidden").mkdir()

    index = discover(competition_root)
    assert len(index.train) == 6
    text = "\n".join(index.problems)
    assert len(index.problems) == 3
    assert f"{dcm / 'loose.png'} lies outside a patient folder" in text
    assert f"{dcm / 'ID001' / 'notes.txt'} is not an image file" in text
    assert f"{dcm / 'ID001' / 'nested'} is a folder" in text


def test_discover_upper_case_suffix_and_jpeg(tmp_path: Path, files) -> None:
    root = tmp_path / "r"
    files.write_image(root / "train" / "DCM" / "ID1" / "a.PNG")
    files.write_json(root / "train" / "outputs_json" / "ID1" / "a.json", [])
    files.write_image(root / "train" / "DCM" / "ID1" / "b.jpg")
    files.write_json(root / "train" / "outputs_json" / "ID1" / "b.json", [])
    index = discover(root)
    assert [s.image_name for s in index.train] == ["a.PNG", "b.jpg"]
    assert index.test == []


def test_discover_test_only_root(tmp_path: Path, files) -> None:
    root = tmp_path / "r"
    files.write_image(root / "test" / "DCM" / "ID9" / "x.png")
    index = discover(root)
    assert index.train == []
    assert [s.image_name for s in index.test] == ["x.png"]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.write_text("x"), "is not a folder"),
        (lambda root: root.mkdir(), "neither train/DCM nor test/DCM"),
        (lambda root: (root / "DCM" / "ID1").mkdir(parents=True), "neither train/DCM nor test/DCM"),
        (lambda root: (root / "train" / "DCM").mkdir(parents=True), "no train/outputs_json"),
    ],
    ids=["missing", "file", "empty-folder", "dcm-at-top", "no-json-folder"],
)
def test_discover_bad_root_raises(tmp_path: Path, build, message: str) -> None:
    root = tmp_path / "root"
    build(root)
    with pytest.raises(LayoutError, match=message) as caught:
        discover(root)
    assert "expected a competition-layout folder" in str(caught.value)
    assert str(root) in str(caught.value)


def test_discover_duplicate_name_names_both(tmp_path: Path, files) -> None:
    root = tmp_path / "r"
    first = files.write_image(root / "train" / "DCM" / "ID1" / "same.png")
    files.write_json(root / "train" / "outputs_json" / "ID1" / "same.json", [])
    second = files.write_image(root / "test" / "DCM" / "ID2" / "same.png")
    with pytest.raises(LayoutError, match="share the file name 'same.png'") as caught:
        discover(root)
    assert str(first) in str(caught.value)
    assert str(second) in str(caught.value)


def test_discover_ambiguous_stem_raises(tmp_path: Path, files) -> None:
    root = tmp_path / "r"
    files.write_image(root / "train" / "DCM" / "ID1" / "a.png")
    files.write_image(root / "train" / "DCM" / "ID1" / "a.jpg")
    files.write_json(root / "train" / "outputs_json" / "ID1" / "a.json", [])
    with pytest.raises(LayoutError, match="share the stem 'a'"):
        discover(root)


def test_list_images_flat_and_nested(tmp_path: Path, files) -> None:
    folder = tmp_path / "predict"
    files.write_image(folder / "b.png")
    files.write_image(folder / "a.JPG")
    files.write_image(folder / "ID7" / "c.jpeg")
    files.write_image(folder / "ID7" / "deeper" / "d.png")
    files.write_image(folder / ".cache" / "e.png")
    (folder / "readme.txt").write_text("not an image")

    samples = list_images(folder)
    assert [s.image_path.relative_to(folder).as_posix() for s in samples] == [
        "ID7/c.jpeg", "ID7/deeper/d.png", "a.JPG", "b.png",
    ]
    assert [s.patient_id for s in samples] == ["ID7", "ID7", "", ""]
    assert all(s.json_path is None for s in samples)
    assert all(s.image_path.is_absolute() for s in samples)


def test_list_images_duplicate_name_raises(tmp_path: Path, files) -> None:
    folder = tmp_path / "predict"
    first = files.write_image(folder / "x" / "scan.png")
    second = files.write_image(folder / "y" / "scan.png")
    with pytest.raises(LayoutError, match="share the file name 'scan.png'") as caught:
        list_images(folder)
    assert str(first) in str(caught.value)
    assert str(second) in str(caught.value)


@pytest.mark.parametrize("make", [lambda f: None, lambda f: f.mkdir()], ids=["missing", "empty"])
def test_list_images_without_images_raises(tmp_path: Path, make) -> None:
    folder = tmp_path / "predict"
    make(folder)
    with pytest.raises(LayoutError, match=str(folder)):
        list_images(folder)


def test_list_images_survives_link_cycle(tmp_path: Path, files) -> None:
    folder = tmp_path / "predict"
    files.write_image(folder / "sub" / "a.png")
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    samples = list_images(folder)
    assert [s.image_name for s in samples] == ["a.png"]
