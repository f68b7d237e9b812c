"""The ensemble build on a real search: members, fold scores, CSV, overlays, real radiographs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.classes import CLASSES, NUM_CLASSES
from data.images import read_image_size
from ensemble import rle
from ensemble.build import BuildOptions, build_ensemble, format_report
from ensemble.evaluate import evaluate_submission
from ensemble.fold import validation_fold
from ensemble.submission import read_submission, submission_table
from ensemble.validate import find_problems

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def options(experiment: Path, tmp_path: Path, **changes) -> BuildOptions:
    values = dict(experiment=experiment, out=tmp_path / "sub.csv", top_k=2, device="cpu")
    values.update(changes)
    return BuildOptions(**values)


def decoded(path: Path, sizes: dict[str, tuple[int, int]]) -> dict[tuple[str, str], np.ndarray]:
    table = submission_table(read_submission(path))
    return {key: rle.decode(text, sizes[key[0]]) for key, text in table.items()}


def test_topk_soft_build(ensemble_experiment, synthetic_root, tmp_path):
    report = build_ensemble(options(ensemble_experiment, tmp_path, overlays=tmp_path / "ov"))

    assert len(report.members) == 2
    assert report.problems == []
    test_images = {p.name: read_image_size(p) for p in (synthetic_root / "test" / "DCM").rglob("*.png")}
    frame = read_submission(tmp_path / "sub.csv")
    assert len(frame) == NUM_CLASSES * len(test_images)
    assert set(frame["image_name"]) == set(test_images)
    assert find_problems(tmp_path / "sub.csv", sizes=test_images) == []
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == sorted(
        f"{Path(name).stem}.png" for name in test_images
    )

    document = json.loads((tmp_path / "sub.ensemble.json").read_text(encoding="utf-8"))
    assert document["format_version"] == 1
    assert [m["trial_id"] for m in document["members"]] == [m.trial_id for m in report.members]
    fold_scores = [m["fold_dice"] for m in document["members"]]
    assert all(0.0 <= score <= 1.0 for score in fold_scores)
    ensemble = document["ensemble"]
    assert ensemble["gain_over_best_member"] == pytest.approx(ensemble["fold_dice"] - max(fold_scores))
    assert set(ensemble["per_class"]) == set(CLASSES)
    assert "gain over the best member" in format_report(report)


def test_fold_dice_matches_evaluation(ensemble_experiment, tmp_path):
    # Build on the validation images themselves: evaluating that CSV against the annotations
    # must give the Dice the build reported for the fold.
    first = build_ensemble(options(ensemble_experiment, tmp_path, top_k=1, score_fold=False))
    fold = validation_fold(first.members[0].config)
    folder = tmp_path / "val_images"
    folder.mkdir()
    for sample in fold.samples:
        (folder / sample.image_name).symlink_to(sample.image_path)

    report = build_ensemble(options(ensemble_experiment, tmp_path, images=folder))
    evaluation = evaluate_submission(tmp_path / "sub.csv", fold.root)
    assert sorted(evaluation.image_names) == sorted(s.image_name for s in fold.samples)
    assert evaluation.mean() == pytest.approx(report.fold_scores.ensemble_mean(), abs=1e-9)


def test_single_member_ensemble_equals_member(ensemble_experiment, tmp_path):
    report = build_ensemble(options(ensemble_experiment, tmp_path, top_k=1))
    scores = report.fold_scores
    assert scores.member_dice.shape == (1, len(scores.image_names), NUM_CLASSES)
    np.testing.assert_allclose(scores.ensemble_dice, scores.member_dice[0])
    # Fold Dice at the images' own size is close to the trial's own score at its input size.
    assert abs(scores.member_means()[0] - report.members[0].val_dice) < 0.1


def test_hard_votes_nest(ensemble_experiment, synthetic_root, tmp_path):
    union = build_ensemble(options(ensemble_experiment, tmp_path / "u", voting="hard", min_votes=1,
                                   score_fold=False))
    both = build_ensemble(options(ensemble_experiment, tmp_path / "b", voting="hard", min_votes=2,
                                  score_fold=False))
    assert union.min_votes == 1
    assert both.min_votes == 2
    sizes = {p.name: read_image_size(p) for p in (synthetic_root / "test" / "DCM").rglob("*.png")}
    union_masks = decoded(tmp_path / "u" / "sub.csv", sizes)
    both_masks = decoded(tmp_path / "b" / "sub.csv", sizes)
    for key, mask in both_masks.items():
        assert not np.any(mask & ~union_masks[key]), key


def test_greedy_selection_report(ensemble_experiment, tmp_path):
    report = build_ensemble(options(ensemble_experiment, tmp_path, selection="greedy", top_k=3))
    greedy = report.greedy
    assert len(greedy["picks"]) == 3
    assert 1 <= greedy["best_steps"] <= 3
    counts = {member.trial_id: member.weight for member in report.members}
    picked = greedy["picks"][: greedy["best_steps"]]
    assert counts == {trial: float(picked.count(trial)) for trial in set(picked)}
    assert report.problems == []


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(selection="greedy", voting="hard"), "only soft voting"),
        (dict(voting="hard", weights="1,2"), "soft voting only"),
        (dict(min_votes=2), "hard voting only"),
        (dict(weights="1,2,3"), "3 values for 2 members"),
        (dict(voting="hard", min_votes=3), "between 1 and 2"),
    ],
)
def test_invalid_options(ensemble_experiment, tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        build_ensemble(options(ensemble_experiment, tmp_path, score_fold=False, **changes))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(weights="1,2,3"), "3 values for 2 members; give one number per member"),
        (dict(voting="hard", min_votes=3), "between 1 and 2"),
    ],
)
def test_member_count_checks_come_before_loading(ensemble_experiment, tmp_path, caplog, changes,
                                                 message):
    with caplog.at_level("INFO", logger="ensemble"):
        with pytest.raises(ValueError, match=message):
            build_ensemble(options(ensemble_experiment, tmp_path, **changes))
    assert not [r for r in caplog.records if r.getMessage().startswith("loaded trial")]


def test_bad_image_fails_before_loading(ensemble_experiment, tmp_path, caplog):
    folder = tmp_path / "images"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "a.png"), np.full((8, 6), 90, np.uint8))
    (folder / "b.png").write_bytes(b"not an image")
    with caplog.at_level("INFO", logger="ensemble"):
        with pytest.raises(ValueError, match=r"b\.png"):
            build_ensemble(options(ensemble_experiment, tmp_path, images=folder,
                                   overlays=tmp_path / "ov"))
    assert not [r for r in caplog.records if r.getMessage().startswith("loaded trial")]
    assert not (tmp_path / "ov").exists()


def test_cli_with_thresholds_file(ensemble_experiment, tmp_path):
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text("default: 0.4\nRadius: 0.6\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "build.py"),
         "--name", ensemble_experiment.name, "--storage-path", str(ensemble_experiment.parent),
         "--top-k", "2", "--weights", "dice", "--thresholds-file", str(thresholds),
         "--out", str(tmp_path / "cli.csv"), "--device", "cpu", "--no-fold-score"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "valid" in result.stdout
    document = json.loads((tmp_path / "cli.ensemble.json").read_text(encoding="utf-8"))
    assert document["thresholds"]["Radius"] == pytest.approx(0.6)
    assert document["thresholds"]["Ulna"] == pytest.approx(0.4)
    weights = [m["weight"] for m in document["members"]]
    assert weights == [pytest.approx(m["leaderboard_val_dice"]) for m in document["members"]]


# One file of each kind in the real set: PNG grayscale, PNG palette, JPEG grayscale, JPEG RGB.
REAL_SUBSET = (
    "pediatric-misc/0.png",
    "rsna-boneage/1578.png",
    "fracatlas-hand/IMG0000015.jpg",
    "fracatlas-hand/IMG0000260.jpg",
)


@pytest.mark.real_data
def test_real_radiographs(ensemble_experiment, real_radiographs_dir, tmp_path):
    folder = tmp_path / "real"
    for relative in REAL_SUBSET:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(real_radiographs_dir / relative)

    report = build_ensemble(options(
        ensemble_experiment, tmp_path, images=folder, overlays=tmp_path / "ov", score_fold=False
    ))

    assert report.problems == []
    sizes = {Path(r).name: read_image_size(real_radiographs_dir / r) for r in REAL_SUBSET}
    assert len(set(sizes.values())) == len(REAL_SUBSET)  # four different sizes
    frame = read_submission(tmp_path / "sub.csv")
    assert frame.groupby("image_name").size().to_dict() == {name: NUM_CLASSES for name in sizes}
    assert find_problems(tmp_path / "sub.csv", sizes=sizes) == []
    for name, (height, width) in sizes.items():
        overlay = cv2.imread(str(tmp_path / "ov" / f"{Path(name).stem}.png"))
        assert overlay.shape == (height, width, 3)
