"""Hyperparameter importance from the search's Optuna study.

The search stores its Optuna study in ``<experiment_dir>/optuna_study.db`` (SQLite), under the
experiment's name; ``search.experiment_files`` documents what the trial states and values mean
there. Optuna estimates importances from COMPLETE trials only, so trials that ASHA stopped early
(PRUNED in the study) do not count.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc

logger = logging.getLogger(__name__)

MIN_COMPLETED_TRIALS = 2
"""Fewest completed trials for an importance estimate. Optuna 5.1's default evaluator
(PED-ANOVA) returns equal importances for a single trial."""

_EQUAL_IMPORTANCE_WARNING = "importances will be equal"


class ImportanceUnavailable(ValueError):
    """Importances cannot be computed; the message gives the reason and the fix."""


def load_study(study_path: Path, study_name: str) -> optuna.Study:
    """Open the search's Optuna study for reading.

    Args:
        study_path: the SQLite file, usually ``<experiment_dir>/optuna_study.db``.
        study_name: the study to open. When the storage contains a single study under another name,
            that study is opened.

    Raises:
        ImportanceUnavailable: the file is missing, cannot be read, or contains no study of that
            name among several.
    """
    if not study_path.is_file():
        raise ImportanceUnavailable(
            f"no Optuna study at {study_path}: the search writes it when it runs with OptunaSearch"
        )

    storage_url = f"sqlite:///{study_path.resolve()}"
    try:
        storage = optuna.storages.RDBStorage(storage_url)
        names = optuna.study.get_all_study_names(storage)
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError, ValueError) as error:
        raise ImportanceUnavailable(
            f"cannot read the Optuna study {study_path} ({type(error).__name__}: {error}); "
            f"if the search is writing to it, try again"
        ) from error

    if study_name not in names:
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise ImportanceUnavailable(
                f"study {study_name!r} not found in {study_path} (studies: {found})"
            )
        logger.info(
            "%s: no study named %r, using its only study %r", study_path, study_name, names[0]
        )
        study_name = names[0]
    return optuna.load_study(study_name=study_name, storage=storage)


def param_importances(study: optuna.Study) -> tuple[dict[str, float], int]:
    """Compute hyperparameter importances with ``optuna.importance.get_param_importances``.

    Args:
        study: the search's study; only its COMPLETE trials count.

    Returns:
        Parameter name to importance (non-negative, summing to 1), most important first, and
        the number of completed trials used.

    Raises:
        ImportanceUnavailable: fewer than :data:`MIN_COMPLETED_TRIALS` completed trials, no
            searched parameter, or the evaluator found the trials too few to tell the
            parameters apart.
    """
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < MIN_COMPLETED_TRIALS:
        pruned = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
        raise ImportanceUnavailable(
            f"hyperparameter importance needs at least {MIN_COMPLETED_TRIALS} COMPLETE trials in "
            f"the Optuna study {study.study_name!r}, found {len(completed)} (and {len(pruned)} "
            f"PRUNED, which do not count); run the report again when more trials have finished"
        )
    if not any(trial.params for trial in completed):
        raise ImportanceUnavailable(
            f"the Optuna study {study.study_name!r} has no searched parameters"
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importances = optuna.importance.get_param_importances(study)
    for warning in caught:
        if _EQUAL_IMPORTANCE_WARNING in str(warning.message).lower():
            raise ImportanceUnavailable(
                f"{len(completed)} completed trials are too few to rank the parameters: "
                f"Optuna warned {str(warning.message)!r}"
            )
    return dict(importances), len(completed)
