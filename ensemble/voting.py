"""Soft and hard voting of multi-label member predictions, and run-level voting of RLEs.

Multi-label throughout: each class has its own sigmoid probability and its own threshold, and
masks of different classes may overlap. A pixel is in a mask when its probability is strictly
above the threshold, as in ``trainable.metrics.logits_to_masks``.

- Soft voting: the (optionally weighted) mean of the members' probabilities, then a threshold
  per class: ``sum_m w_m p_m > t_c * sum_m w_m``.
- Hard voting: each member thresholds its own probabilities (``p_m > t_c``) and a pixel is in
  when at least ``min_votes`` members predict it.

:class:`VoteAccumulator` adds members one at a time, so one image needs one (29, H, W) running
sum (float32 for soft, uint8 for hard) whatever the number of members.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from data.classes import CLASS_INDEX, CLASSES, NUM_CLASSES

VOTING_MODES = ("soft", "hard")


class VoteAccumulator:
    """Running soft or hard vote of the members' probabilities for one image.

    Args:
        mode: ``"soft"`` or ``"hard"``.
        shape: (C, H, W) of the probability stack, C = 29 classes.
        thresholds: scalar or (C,) per-class probability thresholds in [0, 1].
        min_votes: hard voting only, number of members needed to set a pixel (>= 1).

    Members are added with :meth:`add` (a whole stack) or :meth:`add_channels` (a slice of
    classes, so a caller can resize and add a few channels at a time).
    """

    def __init__(
        self,
        mode: str,
        shape: tuple[int, int, int],
        thresholds: float | np.ndarray = 0.5,
        min_votes: int = 1,
    ) -> None:
        if mode not in VOTING_MODES:
            raise ValueError(f"unknown voting mode {mode!r}; expected one of {VOTING_MODES}")
        if min_votes < 1:
            raise ValueError(f"min_votes must be >= 1, got {min_votes}")
        self.mode = mode
        self.shape = tuple(shape)
        self.thresholds = as_class_thresholds(thresholds, self.shape[0])
        self.min_votes = int(min_votes)
        self.total_weight = 0.0
        self.members = 0
        dtype = np.float32 if mode == "soft" else np.uint8
        self._sum = np.zeros(self.shape, dtype=dtype)

    def add(self, probabilities: np.ndarray, weight: float = 1.0) -> None:
        """Add one member's (C, H, W) float probabilities in [0, 1]."""
        self.add_channels(slice(0, self.shape[0]), probabilities, weight)
        self.finish_member(weight)

    def add_channels(self, channels: slice, probabilities: np.ndarray, weight: float = 1.0) -> None:
        """Add a member's probabilities for ``channels`` only; call :meth:`finish_member` after.

        Args:
            channels: slice of class indices.
            probabilities: (len(channels), H, W) float probabilities in [0, 1].
            weight: soft voting weight of the member (>= 0); hard voting ignores it.
        """
        target = self._sum[channels]
        if probabilities.shape != target.shape:
            raise ValueError(
                f"member probabilities have shape {probabilities.shape}, expected {target.shape}"
            )
        if self.mode == "soft":
            if weight == 1.0:
                target += probabilities
            else:
                target += np.float32(weight) * probabilities
        else:
            thresholds = self.thresholds[channels].reshape(-1, 1, 1)
            target += probabilities > thresholds

    def finish_member(self, weight: float = 1.0) -> None:
        """Count one member as added (after its channels went in through add_channels)."""
        if self.mode == "hard" and self.members >= 255:
            raise ValueError("hard voting counts votes in uint8: at most 255 members")
        self.members += 1
        self.total_weight += float(weight)

    def masks(self) -> np.ndarray:
        """Return the voted (C, H, W) bool masks.

        Raises:
            ValueError: when no member was added.
        """
        if self.members == 0:
            raise ValueError("no member was added to the vote")
        if self.mode == "soft":
            cutoff = (self.thresholds * np.float32(self.total_weight)).reshape(-1, 1, 1)
            return self._sum > cutoff
        return self._sum >= self.min_votes

    def mean_probabilities(self) -> np.ndarray:
        """Return the soft vote's (C, H, W) float32 weighted mean probability."""
        if self.mode != "soft" or self.members == 0:
            raise ValueError("mean probabilities exist only for soft voting with members added")
        return self._sum / np.float32(self.total_weight)


def as_class_thresholds(thresholds: float | Sequence[float] | np.ndarray, channels: int) -> np.ndarray:
    """Return per-class thresholds as a (channels,) float32 array, checking the range [0, 1]."""
    values = np.asarray(thresholds, dtype=np.float32)
    if values.ndim == 0:
        values = np.full(channels, values, dtype=np.float32)
    if values.shape != (channels,):
        raise ValueError(f"expected one threshold or {channels}, got shape {values.shape}")
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"thresholds must lie in [0, 1], got {values.tolist()}")
    return values


def load_thresholds(path: str | os.PathLike, default: float = 0.5) -> np.ndarray:
    """Read per-class thresholds from a YAML or JSON file.

    The file maps class names to thresholds; classes that it does not name get ``default``,
    which the key ``default`` may also set::

        default: 0.5
        Pisiform: 0.35
        Trapezoid: 0.4

    Returns:
        (29,) float32 thresholds in ``CLASSES`` order.

    Raises:
        ValueError: when the file is missing or unreadable, is not a mapping, names an unknown
            class, or gives a value outside [0, 1].
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read thresholds file {path}: {error.strerror}") from None
    try:
        content = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"thresholds file {path} is not valid JSON/YAML: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(
            f"thresholds file {path} must map class names to thresholds, got "
            f"{type(content).__name__}"
        )

    content = dict(content)
    base = content.pop("default", default)
    thresholds = np.full(NUM_CLASSES, _threshold_value(base, "default", path), dtype=np.float32)
    for class_name, value in content.items():
        if class_name not in CLASS_INDEX:
            raise ValueError(
                f"thresholds file {path}: unknown class {class_name!r}; expected 'default' or "
                "one of " + ", ".join(CLASSES)
            )
        thresholds[CLASS_INDEX[class_name]] = _threshold_value(value, class_name, path)
    return thresholds


def _threshold_value(value: object, name: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"thresholds file {path}: {name} is {value!r}, expected a number in [0, 1]")
    return float(value)


def parse_weights(text: str | None, members: int) -> list[float] | str | None:
    """Parse the ``--weights`` option.

    Args:
        text: None (equal weights), ``"dice"`` (weight by validation Dice), or comma-separated
            non-negative numbers, one per member.
        members: number of members.

    Returns:
        None, ``"dice"``, or the list of weights.
    """
    if text is None:
        return None
    if text.strip().lower() == "dice":
        return "dice"
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"invalid --weights {text!r}; expected 'dice' or comma-separated numbers such as "
            "'2,1,1'"
        ) from None
    if len(weights) != members:
        raise ValueError(
            f"--weights has {len(weights)} values for {members} members; give one number per "
            "member (the --top-k best trials that have a checkpoint) or 'dice'"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"--weights must be non-negative with a positive sum, got {weights}")
    return weights


def vote_runs(
    runs: Sequence[tuple[np.ndarray, np.ndarray]], min_votes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hard-vote masks given as runs, without decoding them to pixels.

    A sweep over the run boundaries of all members counts how many members cover each stretch
    of pixels. The stretches covered at least ``min_votes`` times form the result. The cost
    grows with the number of runs, not with the image size.

    Args:
        runs: one ``(starts, lengths)`` pair per member, 0-based, each sorted and
            non-overlapping (as :func:`ensemble.rle.parse_runs` returns them).
        min_votes: members needed to keep a pixel (>= 1).

    Returns:
        ``(starts, lengths)`` of the voted mask, sorted, touching runs merged.
    """
    if min_votes < 1:
        raise ValueError(f"min_votes must be >= 1, got {min_votes}")
    empty = np.zeros(0, dtype=np.int64)
    if len(runs) < min_votes:
        return empty, empty.copy()

    starts = np.concatenate([np.asarray(s, dtype=np.int64) for s, _ in runs])
    if starts.size == 0:
        return empty, empty.copy()
    ends = np.concatenate([np.asarray(s, np.int64) + np.asarray(n, np.int64) for s, n in runs])

    positions = np.concatenate([starts, ends])
    changes = np.concatenate([np.ones(starts.size, np.int64), -np.ones(ends.size, np.int64)])
    order = np.argsort(positions, kind="stable")
    positions, changes = positions[order], changes[order]

    # Sum the changes at each distinct position. The running count is then the coverage from
    # that position up to the next one.
    unique_positions, first = np.unique(positions, return_index=True)
    counts = np.cumsum(np.add.reduceat(changes, first))
    covered = counts >= min_votes

    # Covered stretches: from a position where coverage turns on to where it turns off.
    edges = np.diff(np.concatenate([[False], covered, [False]]).astype(np.int8))
    on = unique_positions[np.flatnonzero(edges == 1)]
    off_index = np.flatnonzero(edges == -1)
    off = unique_positions[off_index]
    return on, off - on
