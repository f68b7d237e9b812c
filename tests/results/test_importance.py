"""Hyperparameter importance from real Optuna SQLite studies, including too few trials."""

from __future__ import annotations

import math

import optuna
import pytest

from results.importance import (
    MIN_COMPLETED_TRIALS,
    ImportanceUnavailable,
    load_study,
    param_importances,
)

DISTRIBUTIONS = {
    "optim/lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    "model/encoder": optuna.distributions.CategoricalDistribution(["resnet18", "resnet34"]),
}


def _make_study(path, name: str, values: list[float], pruned: int = 0) -> optuna.Study:
    """Create a maximize study whose trial i has lr = 10**(-4 + 2 i / 9) and value values[i].

    The encoder alternates between trials, so it carries no information about the value when
    the values follow lr.
    """
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{path}", direction="maximize")
    for index, value in enumerate(values):
        params = {
            "optim/lr": 10 ** (-4 + 2 * index / 9),
            "model/encoder": ("resnet18", "resnet34")[index % 2],
        }
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=DISTRIBUTIONS, value=value)
        )
    for index in range(pruned):
        params = {"optim/lr": 1e-3, "model/encoder": "resnet18"}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=DISTRIBUTIONS, state=optuna.trial.TrialState.PRUNED
            )
        )
    return study


@pytest.fixture(autouse=True)
def _quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


def test_lr_dominates_when_value_follows_lr(tmp_path):
    _make_study(
        tmp_path / "study.db", "exp", [math.log10(10 ** (-4 + 2 * i / 9)) + 4 for i in range(10)]
    )
    importances, completed = param_importances(load_study(tmp_path / "study.db", "exp"))

    assert completed == 10
    assert set(importances) == {"optim/lr", "model/encoder"}
    assert sum(importances.values()) == pytest.approx(1.0)
    assert importances["optim/lr"] > importances["model/encoder"]
    assert list(importances)[0] == "optim/lr"


@pytest.mark.parametrize("completed", [0, 1])
def test_too_few_completed_trials(tmp_path, completed):
    _make_study(tmp_path / "study.db", "exp", [0.5] * completed, pruned=3)

    with pytest.raises(ImportanceUnavailable) as caught:
        param_importances(load_study(tmp_path / "study.db", "exp"))

    message = str(caught.value)
    assert f"at least {MIN_COMPLETED_TRIALS} COMPLETE trials" in message
    assert f"found {completed}" in message
    assert "3 PRUNED" in message


def test_equal_values_are_unrankable(tmp_path):
    _make_study(tmp_path / "study.db", "exp", [0.5, 0.5, 0.5])

    with pytest.raises(ImportanceUnavailable, match="too few to rank the parameters"):
        param_importances(load_study(tmp_path / "study.db", "exp"))


def test_load_study_missing_file(tmp_path):
    with pytest.raises(ImportanceUnavailable, match="no Optuna study at"):
        load_study(tmp_path / "optuna_study.db", "exp")
    assert not (tmp_path / "optuna_study.db").exists()


def test_load_study_single_other_name(tmp_path):
    _make_study(tmp_path / "study.db", "renamed", [0.1, 0.2])
    assert load_study(tmp_path / "study.db", "exp").study_name == "renamed"


def test_load_study_ambiguous_name(tmp_path):
    _make_study(tmp_path / "study.db", "first", [0.1])
    _make_study(tmp_path / "study.db", "second", [0.1])

    with pytest.raises(
        ImportanceUnavailable, match="study 'exp' not found in .* \\(studies: first, second\\)"
    ):
        load_study(tmp_path / "study.db", "exp")


def test_load_study_not_sqlite(tmp_path):
    (tmp_path / "study.db").write_text("not a database")

    with pytest.raises(ImportanceUnavailable, match="cannot read the Optuna study"):
        load_study(tmp_path / "study.db", "exp")
