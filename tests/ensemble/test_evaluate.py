"""Submission scoring against annotations, with hand-computed Dice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES
from ensemble import rle
from ensemble.evaluate import dice_scores, evaluate_submission, format_table, plot_per_class
from ensemble.submission import write_submission

REPO_ROOT = Path(__file__).resolve().parents[2]


def flat_rle(shape, rows, cols):
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    return rle.encode(mask)


@pytest.fixture()
def scored_dataset(tmp_path, helpers):
    """Two annotated images of different non-square sizes and a prediction CSV.

    Image a (10 x 12): truth Radius x, y in 2..5 (16 px) and finger-1 x 0..1, y 0..1 (4 px).
    Prediction: Radius rows 2..5, cols 2..3 (8 px, all inside), Ulna one pixel, finger-1 none.
    Dice: Radius 2*8/(8+16) = 2/3, Ulna 0, finger-1 0, the other 26 classes 1 (both empty).

    Image b (7 x 5): truth Ulna x 1..2, y 1..3 (6 px); prediction equal -> all 29 classes 1.
    Image c.png is only in the CSV (no annotation) and is skipped.
    """
    root = tmp_path / "root"
    helpers.write_annotated_image(
        root, "ID001", "a", (10, 12),
        [helpers.square_polygon("Radius", 2, 2, 5, 5), helpers.square_polygon("finger-1", 0, 0, 1, 1)],
    )
    helpers.write_annotated_image(
        root, "ID001", "b", (7, 5), [helpers.square_polygon("Ulna", 1, 1, 2, 3)]
    )
    rows = []
    for class_name in CLASSES:
        text = ""
        if class_name == "Radius":
            text = flat_rle((10, 12), slice(2, 6), slice(2, 4))
        elif class_name == "Ulna":
            text = flat_rle((10, 12), 9, 11)
        rows.append(("a.png", class_name, text))
    for class_name in CLASSES:
        text = flat_rle((7, 5), slice(1, 4), slice(1, 3)) if class_name == "Ulna" else ""
        rows.append(("b.png", class_name, text))
    rows.append(("c.png", "Radius", "1 1"))
    csv_path = tmp_path / "pred.csv"
    write_submission(csv_path, rows)
    return root, csv_path


def test_dice_scores_hand_table():
    prediction = np.zeros((NUM_CLASSES, 2, 3), np.uint8)
    truth = np.zeros_like(prediction)
    prediction[0, 0, :2] = 1  # 2 px
    truth[0, 0, 1:] = 1  # 2 px, overlap 1 -> 2*1/4
    truth[1, 1, 1] = 1  # missed -> 0
    prediction[2, 1, :] = 1  # false positive only -> 0
    prediction[3] = truth[3] = 1  # identical -> 1
    scores = dice_scores(prediction, truth)
    assert scores[0] == pytest.approx(0.5)
    assert scores[1] == 0.0
    assert scores[2] == 0.0
    assert scores[3] == 1.0
    assert scores[4:].tolist() == [1.0] * (NUM_CLASSES - 4)


def test_evaluate_hand_computed(scored_dataset):
    root, csv_path = scored_dataset
    evaluation = evaluate_submission(csv_path, root)

    assert evaluation.image_names == ["a.png", "b.png"]
    assert evaluation.skipped_images == ["c.png"]
    assert evaluation.missing_rows == 0
    a, b = evaluation.dice
    assert a[CLASS_INDEX["Radius"]] == pytest.approx(2 / 3)
    assert a[CLASS_INDEX["Ulna"]] == 0.0
    assert a[CLASS_INDEX["finger-1"]] == 0.0
    assert a.sum() == pytest.approx(26 + 2 / 3)
    assert b.tolist() == [1.0] * NUM_CLASSES

    assert evaluation.per_class()[CLASS_INDEX["Radius"]] == pytest.approx((2 / 3 + 1) / 2)
    assert evaluation.mean() == pytest.approx((26 + 2 / 3 + 29) / 58)


def test_evaluate_missing_rows_are_empty(tmp_path, scored_dataset):
    root, _ = scored_dataset
    csv_path = tmp_path / "partial.csv"
    # Only the Ulna row of image b: the other 28 classes are empty predictions on empty truth.
    write_submission(csv_path, [("b.png", "Ulna", flat_rle((7, 5), slice(1, 4), slice(1, 3)))])
    evaluation = evaluate_submission(csv_path, root)
    assert evaluation.missing_rows == NUM_CLASSES - 1
    assert evaluation.mean() == 1.0


def test_evaluate_no_ground_truth(tmp_path, scored_dataset):
    root, _ = scored_dataset
    csv_path = tmp_path / "other.csv"
    write_submission(csv_path, [("zzz.png", "Ulna", "")])
    with pytest.raises(ValueError, match="none of the 1 images"):
        evaluate_submission(csv_path, root)


def test_overlays_of_worst_images(tmp_path, scored_dataset):
    import cv2

    root, csv_path = scored_dataset
    evaluate_submission(csv_path, root, overlays_dir=tmp_path / "worst", worst=1)
    files = sorted((tmp_path / "worst").iterdir())
    assert [f.name for f in files] == ["001_a.png"]
    overlay = cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB)
    assert overlay.shape == (10, 12, 3)
    # Radius cols 4..5 of rows 2..5 are missed (blue dominates), the Ulna pixel is a false
    # positive (red dominates), cols 2..3 are correct (green dominates).
    assert int(np.argmax(overlay[3, 5])) == 2  # missed Radius pixel: blue
    assert int(np.argmax(overlay[9, 11])) == 0  # false positive Ulna pixel: red
    assert int(np.argmax(overlay[3, 2])) == 1  # correct Radius pixel: green


def test_table_and_plot(tmp_path, scored_dataset):
    root, csv_path = scored_dataset
    evaluation = evaluate_submission(csv_path, root)
    table = format_table(evaluation)
    assert "Radius" in table
    assert table.splitlines()[-1].startswith("mean")
    assert f"{evaluation.mean():.4f}" in table
    plot = plot_per_class(evaluation, tmp_path / "dice.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_json(tmp_path, scored_dataset):
    root, csv_path = scored_dataset
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "evaluate.py"), str(csv_path),
         "--gt", str(root), "--overlays", str(tmp_path / "ov"), "--worst", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "pred.dice.json").read_text(encoding="utf-8"))
    assert document["format_version"] == 1
    assert document["images"] == 2
    assert document["mean"] == pytest.approx((26 + 2 / 3 + 29) / 58)
    assert document["per_image"]["a.png"]["dice"]["Radius"] == pytest.approx(2 / 3)
    assert document["per_class"]["Ulna"] == pytest.approx(0.5)
    assert document["skipped_images"] == ["c.png"]
    assert (tmp_path / "pred.dice.png").is_file()
    assert len(list((tmp_path / "ov").iterdir())) == 2
    assert "mean" in result.stdout


@pytest.mark.parametrize(
    "text, problem",
    [("1 abc", "'abc'"), ("100 30", "ends at pixel")],  # image a is 10 x 12 = 120 pixels
)
def test_invalid_rle_names_file_line_and_key(tmp_path, scored_dataset, text, problem):
    root, _ = scored_dataset
    csv_path = tmp_path / "bad.csv"
    rows = [("a.png", class_name, text if class_name == "Ulna" else "") for class_name in CLASSES]
    write_submission(csv_path, rows)
    line = 2 + CLASS_INDEX["Ulna"]  # the header is line 1
    with pytest.raises(ValueError, match=problem) as caught:
        evaluate_submission(csv_path, root)
    message = str(caught.value)
    assert str(csv_path) in message
    assert f"line {line}:" in message
    assert "('a.png', 'Ulna')" in message
    assert "10x12" in message

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "evaluate.py"), str(csv_path), "--gt", str(root)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"line {line}:" in result.stderr
    assert "('a.png', 'Ulna')" in result.stderr


def test_missing_rows_and_images_are_warned(tmp_path, scored_dataset, caplog):
    root, _ = scored_dataset
    csv_path = tmp_path / "partial.csv"
    # Image b has only its Ulna row (28 rows missing); image a has no row at all.
    write_submission(csv_path, [("b.png", "Ulna", flat_rle((7, 5), slice(1, 4), slice(1, 3)))])
    with caplog.at_level("WARNING", logger="ensemble.evaluate"):
        evaluation = evaluate_submission(csv_path, root)
    assert evaluation.image_names == ["b.png"]
    assert evaluation.unpredicted_images == ["a.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    rows_warning = next(w for w in warnings if "rows" in w and "lacks" in w)
    assert f"lacks {NUM_CLASSES - 1} (image_name, class) rows" in rows_warning
    assert "('b.png', 'finger-1')" in rows_warning  # an example, in CLASSES order
    assert f"and {NUM_CLASSES - 4} more" in rows_warning
    assert "empty prediction" in rows_warning
    images_warning = next(w for w in warnings if "annotated images" in w)
    assert images_warning.startswith("1 annotated images")
    assert "a.png" in images_warning
    assert "not scored" in images_warning

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "ensemble" / "evaluate.py"), str(csv_path), "--gt", str(root)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "lacks 28 (image_name, class) rows" in result.stderr
    assert "a.png" in result.stderr
    document = json.loads((tmp_path / "partial.dice.json").read_text(encoding="utf-8"))
    assert document["missing_rows"] == NUM_CLASSES - 1
    assert document["unpredicted_images"] == ["a.png"]
