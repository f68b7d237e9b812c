"""Ray's OptunaSearch, changed so that trials stopped early by ASHA reach Optuna as PRUNED.

Ray's ``OptunaSearch`` (Ray 2.60) records every trial that ends with a result as ``COMPLETE``
in the Optuna study, valued by its last reported metric, including trials that ASHA stopped
after one or two epochs. TPE then ranks those early Dice scores against the scores of full-length runs, and an
early score is almost always lower, so TPE learns "short runs are bad configs" instead of
"this config is bad".

:class:`PruningOptunaSearch` records how each trial ended instead:

- a trial that reached the epoch budget (``training_iteration >= max_t``) ends ``COMPLETE``
  with its best ``val_dice`` over all epochs;
- a trial that stopped before the budget ends ``PRUNED`` with every per-epoch value as an
  intermediate value, so Optuna stores the last one as its value;
- a trial that errored ends ``FAIL``; a trial that ended without any result ends ``FAIL`` too,
  because it gives no information about its config.

Optuna's TPE (``optuna.samplers._tpe.sampler._split_trials``, Optuna 5.1) ranks every COMPLETE
trial above every PRUNED one, and PRUNED trials among themselves by the last step reached, then
the value there. This is the ranking ASHA itself implies: a config that survived more rungs is
better, and at equal rungs the higher Dice is better.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)

TRAINING_ITERATION = "training_iteration"


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that records ASHA-stopped trials as PRUNED and full runs by their best value.

    Args:
        max_t: the epoch budget of a trial (ASHA's ``max_t``, in ``training_iteration`` units).
            A trial whose last result reached it is complete; any earlier end is a stop.
        **kwargs: passed to :class:`ray.tune.search.optuna.OptunaSearch` (``metric``, ``mode``,
            ``sampler``, ``study_name``, ``storage``, ``seed``, ...). Only a single metric is
            supported.
    """

    def __init__(self, *args: Any, max_t: int, **kwargs: Any) -> None:
        if isinstance(max_t, bool) or not isinstance(max_t, int) or max_t < 1:
            raise ValueError(f"max_t must be a positive integer (the epoch budget), got {max_t!r}")
        if isinstance(kwargs.get("metric"), list):
            raise ValueError("PruningOptunaSearch supports a single metric, got a list")
        self._max_t = max_t
        # trial id -> {step: value}: every value this searcher reported to Optuna.
        self._reported: dict[str, dict[int, float]] = {}
        super().__init__(*args, **kwargs)

    @property
    def max_t(self) -> int:
        """The epoch budget of a trial."""
        return self._max_t

    def suggest(self, trial_id: str) -> dict | None:
        """Sample a config, and store the Tune trial id as the Optuna trial's ``tune_trial_id``."""
        is_new = trial_id not in self._ot_trials
        config = super().suggest(trial_id)
        if is_new and trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the trial's metric at its ``training_iteration`` to Optuna as an intermediate value."""
        if trial_id in self._completed_trials:
            logger.warning("result for trial %s after it finished; ignored", trial_id)
            return
        self._report(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Tell Optuna how the trial ended: COMPLETE, PRUNED or FAIL (see the module docstring)."""
        if trial_id in self._completed_trials:
            logger.warning("second completion for trial %s; ignored", trial_id)
            return
        if trial_id not in self._ot_trials:
            logger.warning("completion for trial %s that this searcher never suggested", trial_id)
            return

        # Tune does not pass the result that triggered a scheduler STOP to on_trial_result
        # (TuneController._process_trial_result, Ray 2.60), so the last epoch is reported here.
        if result:
            self._report(trial_id, result)
        values = self._reported.get(trial_id, {})
        last_step = max(values, default=0)

        state, value = _final_state(values, last_step, self._max_t, self._mode, error)
        ot_trial = self._ot_trials[trial_id]
        try:
            self._ot_study.tell(ot_trial, value, state=state)
        except (RuntimeError, ValueError) as tell_error:
            # Optuna raises when the trial was already finished in the study, for example when
            # a resumed search repeats a completion that the storage already holds.
            logger.warning("Optuna rejected the end of trial %s: %s", trial_id, tell_error)
        else:
            logger.debug(
                "trial %s -> Optuna trial %d %s (value %s, %d epochs)",
                trial_id, ot_trial.number, state.name, value, last_step,
            )
        self._completed_trials.add(trial_id)

    def optuna_trial_number(self, trial_id: str) -> int | None:
        """Return the Optuna trial number of a Tune trial id, or None if it has none."""
        ot_trial = self._ot_trials.get(trial_id)
        return None if ot_trial is None else ot_trial.number

    def _report(self, trial_id: str, result: dict) -> None:
        value = result.get(self._metric)
        step = result.get(TRAINING_ITERATION)
        ot_trial = self._ot_trials.get(trial_id)
        if value is None or step is None or ot_trial is None:
            return
        value = float(value)
        step = int(step)
        reported = self._reported.setdefault(trial_id, {})
        # A trial restored from a checkpoint after a failure reports the epochs after the
        # checkpoint again; Optuna keeps the first value of a step and warns on repeats.
        if step in reported:
            return
        reported[step] = value
        ot_trial.report(value, step)


def _final_state(
    values: dict[int, float], last_step: int, max_t: int, mode: str, error: bool
) -> tuple[TrialState, float | None]:
    """Decide the Optuna state and value of a finished trial from its per-epoch values."""
    if error or not values:
        return TrialState.FAIL, None
    if last_step < max_t:
        return TrialState.PRUNED, None

    # The full-length trial is valued by its best epoch, not its last: the trainable keeps the
    # best checkpoint by val_dice, and that checkpoint is what the results and ensemble stages
    # use. All complete trials ran the same number of epochs, so the max over epochs favours
    # none of them. A NaN epoch never counts as the best.
    finite = [value for value in values.values() if math.isfinite(value)]
    if not finite:
        return TrialState.FAIL, None
    best = max(finite) if mode == "max" else min(finite)
    return TrialState.COMPLETE, best
