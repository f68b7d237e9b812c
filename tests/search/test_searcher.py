"""PruningOptunaSearch: how trials stopped early, full-length trials and failures reach Optuna."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState
from ray import tune

from search.searcher import PruningOptunaSearch, _final_state

MAX_T = 3


@pytest.fixture
def searcher() -> PruningOptunaSearch:
    search = PruningOptunaSearch(
        max_t=MAX_T,
        sampler=optuna.samplers.TPESampler(seed=0),
        study_name="unit",
    )
    search.set_search_properties("val_dice", "max", {"lr": tune.loguniform(1e-4, 1e-2)})
    return search


def _run(search: PruningOptunaSearch, trial_id: str, values: list[float], *, error: bool = False) -> None:
    """Feed per-epoch values as Tune does: the last result goes only to on_trial_complete."""
    search.suggest(trial_id)
    results = [{"val_dice": v, "training_iteration": i} for i, v in enumerate(values, start=1)]
    for result in results[:-1]:
        search.on_trial_result(trial_id, result)
    search.on_trial_complete(trial_id, result=None if error else results[-1], error=error)


def _frozen(search: PruningOptunaSearch, trial_id: str) -> optuna.trial.FrozenTrial:
    number = search.optuna_trial_number(trial_id)
    return search._ot_study.trials[number]


def test_stopped_trial_is_pruned_with_intermediate_values(searcher):
    _run(searcher, "early", [0.1, 0.25])

    trial = _frozen(searcher, "early")
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.1, 2: 0.25}
    assert trial.value == 0.25  # Optuna stores the last intermediate value of a pruned trial


def test_full_trial_is_complete_with_best_value(searcher):
    _run(searcher, "full", [0.3, 0.5, 0.4])

    trial = _frozen(searcher, "full")
    assert trial.state == TrialState.COMPLETE
    assert trial.value == 0.5
    assert trial.intermediate_values == {1: 0.3, 2: 0.5, 3: 0.4}


def test_errored_trial_fails(searcher):
    searcher.suggest("broken")
    searcher.on_trial_result("broken", {"val_dice": 0.2, "training_iteration": 1})
    searcher.on_trial_complete("broken", error=True)

    trial = _frozen(searcher, "broken")
    assert trial.state == TrialState.FAIL
    assert trial.intermediate_values == {1: 0.2}


def test_trial_without_results_fails(searcher):
    searcher.suggest("never-ran")
    searcher.on_trial_complete("never-ran")

    assert _frozen(searcher, "never-ran").state == TrialState.FAIL


def test_repeated_steps_after_retry_keep_first_value(searcher):
    searcher.suggest("retried")
    searcher.on_trial_result("retried", {"val_dice": 0.2, "training_iteration": 1})
    searcher.on_trial_result("retried", {"val_dice": 0.3, "training_iteration": 2})
    # Restored from the checkpoint of epoch 1, the trial reports epoch 2 again.
    searcher.on_trial_result("retried", {"val_dice": 0.35, "training_iteration": 2})
    searcher.on_trial_complete("retried", {"val_dice": 0.6, "training_iteration": 3})

    trial = _frozen(searcher, "retried")
    assert trial.intermediate_values == {1: 0.2, 2: 0.3, 3: 0.6}
    assert trial.state == TrialState.COMPLETE


def test_second_completion_is_ignored(searcher):
    _run(searcher, "twice", [0.4, 0.5, 0.6])
    searcher.on_trial_complete("twice", {"val_dice": 0.1, "training_iteration": 1}, error=True)

    trial = _frozen(searcher, "twice")
    assert trial.state == TrialState.COMPLETE
    assert trial.value == 0.6


def test_tune_trial_id_is_a_user_attribute(searcher):
    _run(searcher, "abc123", [0.1])

    assert _frozen(searcher, "abc123").user_attrs["tune_trial_id"] == "abc123"


def test_tpe_ranks_complete_above_pruned(searcher):
    # A pruned trial with a high early value must not outrank a complete one.
    _run(searcher, "complete-low", [0.1, 0.2, 0.3])
    _run(searcher, "pruned-high", [0.9])
    study = searcher._ot_study
    below, _ = optuna.samplers._tpe.sampler._split_trials(study, study.trials, n_below=1)

    assert [t.user_attrs["tune_trial_id"] for t in below] == ["complete-low"]


@pytest.mark.parametrize(
    ("values", "last_step", "mode", "error", "expected"),
    [
        ({1: 0.1, 2: 0.2, 3: 0.15}, 3, "max", False, (TrialState.COMPLETE, 0.2)),
        ({1: 0.5, 2: 0.2, 3: 0.3}, 3, "min", False, (TrialState.COMPLETE, 0.2)),
        ({1: 0.1, 2: 0.2}, 2, "max", False, (TrialState.PRUNED, None)),
        ({1: 0.1, 2: 0.2, 3: 0.3}, 3, "max", True, (TrialState.FAIL, None)),
        ({}, 0, "max", False, (TrialState.FAIL, None)),
        ({1: math.nan, 2: 0.4, 3: math.nan}, 3, "max", False, (TrialState.COMPLETE, 0.4)),
        ({1: math.nan, 2: math.nan, 3: math.nan}, 3, "max", False, (TrialState.FAIL, None)),
    ],
)
def test_final_state_table(values, last_step, mode, error, expected):
    assert _final_state(values, last_step, MAX_T, mode, error) == expected


@pytest.mark.parametrize("max_t", [0, -1, 2.5, True])
def test_invalid_max_t_is_rejected(max_t):
    with pytest.raises(ValueError, match="max_t"):
        PruningOptunaSearch(max_t=max_t)
