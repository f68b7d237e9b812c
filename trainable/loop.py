"""The training loop in plain PyTorch, shared by the command line and the Ray Tune trainable.

One epoch trains on the training images of ``data.fold`` and then validates on its validation
images: mean and per-class Dice of ``sigmoid(logits) > 0.5`` per (image, class), at the config's
``input_size``. A ``reporter`` callback receives the metrics of every epoch and the
:class:`Trainer`, through which it can save checkpoints.

Random numbers, all derived from ``config["seed"]``:

- model initialisation draws from the global torch generator, seeded at the start;
- the training DataLoader shuffles with its own ``torch.Generator``; validation has a separate
  one, so running validation or not never changes the training batches;
- augmentations draw from streams that ``data.dataset.HandBoneDataset`` seeds from the seed, the
  epoch and the image index.

Resuming restores all of them with the model, optimizer, scheduler, grad scaler and EMA, so a
resumed run repeats the batches of an uninterrupted one (on the CPU: bit for bit).
"""

from __future__ import annotations

import gc
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from data.dataset import HandBoneDataset
from data.layout import discover
from data.splits import read_splits, select_fold
from data.transforms import build_transforms
from trainable.checkpoint import (
    capture_rng_state,
    restore_rng_state,
    save_checkpoint,
    save_checkpoint_dir,
)
from trainable.config import resolve_config
from trainable.losses import build_loss
from trainable.metrics import dice_per_image_class, logits_to_masks, mean_dice, per_class_metrics
from trainable.models import build_model

__all__ = [
    "DeviceError",
    "Reporter",
    "TrainSummary",
    "Trainer",
    "TrainingDivergedError",
    "amp_dtype",
    "build_datasets",
    "lr_factor",
    "resolve_device",
    "train",
]

logger = logging.getLogger(__name__)

# Masks travel from the Dataset as uint8 and become float32 on the device: a float32 mask stack
# at 1024 px is 121 MB per sample, and allocating it cost more than reading the cache
# (benchmarks/bench_data_cache.py).
MASK_DTYPE = torch.uint8

Reporter = Callable[[dict[str, float], "Trainer"], None]
"""``reporter(metrics, trainer)``, called after every epoch (see :meth:`Trainer.run_epoch`)."""


class DeviceError(ValueError):
    """The config requests a device this process cannot use."""


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainSummary:
    """Outcome of :func:`train`: the best epoch (1-based; 0 if none scored) and its Dice."""

    best_val_dice: float
    best_epoch: int
    epochs_run: int
    last_metrics: dict[str, float]


def resolve_device(requested: str) -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a device this process can use.

    ``auto`` takes the first GPU when one is visible, else the CPU.

    Raises:
        DeviceError: a GPU is requested but none is visible, or the index is out of range.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(
            f"config device {requested!r} needs a GPU, but none is visible to this process "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); set device: auto "
            "or cpu, or give the trial a GPU"
        )
    device = torch.device(requested)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(
            f"config device {requested!r}: only {torch.cuda.device_count()} GPUs are visible"
        )
    return device


def amp_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """Return the autocast dtype for ``device``, or None for full float32.

    Mixed precision runs on GPUs only. ``amp: true`` picks bfloat16 where the GPU supports it,
    else float16; ``"bf16"`` and ``"fp16"`` force one.

    NOTE: the tests run on CPUs only, so the autocast, GradScaler and CUDA paths of this module
    have not been exercised by them.
    """
    if device.type != "cuda" or amp is False:
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Return the learning-rate multiplier for optimizer step ``step`` (0-based).

    Linear warm-up from ``1 / warmup_steps`` to 1 over the first ``warmup_steps`` steps, then a
    cosine decay from 1 towards 0 over the remaining steps.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_datasets(config: Mapping[str, Any]) -> tuple[HandBoneDataset, HandBoneDataset]:
    """Build the training and validation datasets of ``data.fold`` from a resolved config.

    Raises:
        ValueError: no ``data.root``, a dataset that does not follow the competition layout, a
            missing or mismatched split file, or an empty training or validation set.
    """
    data = config["data"]
    if data["root"] is None:
        raise ValueError(
            "config key 'data.root' is null; set it to a dataset folder in the competition layout"
        )
    splits_path = Path(data["splits"])
    if not splits_path.is_file():
        raise ValueError(
            f"split file {splits_path} not found; write one with data.splits.write_splits("
            f"path, data.splits.make_splits(data.layout.discover(root).train, n_folds=5)), or "
            "run python -m trainable.train with --make-splits"
        )
    samples = discover(data["root"]).train
    if not samples:
        raise ValueError(f"no annotated training images found under {data['root']}")
    train_samples, val_samples = select_fold(samples, read_splits(splits_path), data["fold"])
    if not train_samples or not val_samples:
        raise ValueError(
            f"fold {data['fold']} of {splits_path} leaves {len(train_samples)} training and "
            f"{len(val_samples)} validation images; both must be non-empty"
        )

    size = config["input_size"]
    train_set = HandBoneDataset(
        train_samples,
        size,
        cache_dir=data["cache_dir"],
        transform=build_transforms(config["aug"], train=True),
        seed=config["seed"],
        mask_dtype=MASK_DTYPE,
    )
    val_set = HandBoneDataset(
        val_samples, size, cache_dir=data["cache_dir"], transform=None, mask_dtype=MASK_DTYPE
    )
    logger.info(
        "fold %d: %d training and %d validation images at %d px",
        data["fold"],
        len(train_set),
        len(val_set),
        size,
    )
    return train_set, val_set


class Trainer:
    """Model, optimizer, schedule, EMA and data loaders of one training run.

    Args:
        config: a resolved training config with absolute paths.
        train_dataset, val_dataset: datasets yielding ``(image (1, S, S), mask (29, S, S))``
            float32 pairs; :func:`build_datasets` makes them from the config.

    Attributes:
        epoch: number of completed epochs (0 before the first).
        best_val_dice, best_epoch: best validation Dice so far and its epoch (0 if none yet).
        is_best: whether the last completed epoch set a new best.
    """

    def __init__(self, config: Mapping[str, Any], train_dataset: Dataset, val_dataset: Dataset):
        self.config = dict(config)
        self.device = resolve_device(config["device"])
        self.autocast_dtype = amp_dtype(self.device, config["amp"])
        if config["amp"] and self.device.type != "cuda":
            logger.info("mixed precision is used on GPUs only; training in float32 on %s", self.device)
        seed_everything(config["seed"])

        optim = config["optim"]
        self.train_generator = torch.Generator().manual_seed(config["seed"])
        self.val_generator = torch.Generator().manual_seed(config["seed"] + 1)
        self.train_loader = self._loader(train_dataset, shuffle=True, generator=self.train_generator)
        self.val_loader = self._loader(val_dataset, shuffle=False, generator=self.val_generator)
        if len(self.train_loader) == 0 or len(val_dataset) == 0:
            raise ValueError("the training and validation sets must each hold at least one image")

        self.model = build_model(config).to(self.device)
        self.loss_fn = build_loss(config)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=optim["lr"], weight_decay=optim["weight_decay"]
        )
        self.steps_per_epoch = math.ceil(len(self.train_loader) / optim["accumulate"])
        total_steps = optim["epochs"] * self.steps_per_epoch
        warmup_steps = round(optim["warmup_epochs"] * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, warmup_steps, total_steps)
        )
        self.scaler = (
            torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        )
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config["ema"]), use_buffers=True)
            if config["ema"] is not None
            else None
        )

        self.epoch = 0
        self.best_val_dice = -math.inf
        self.best_epoch = 0
        self.is_best = False

    # -- one epoch ---------------------------------------------------------------------------

    def train_epoch(self, on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> float:
        """Train one epoch; return the mean training loss over its batches.

        Args:
            on_batch: called with each ``(images, masks)`` batch before it is used (CPU tensors).

        Raises:
            TrainingDivergedError: the loss is NaN or infinite without a grad scaler to skip it.
        """
        self.model.train()
        dataset = self.train_loader.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.epoch + 1)

        accumulate = self.config["optim"]["accumulate"]
        n_batches = len(self.train_loader)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        counted = 0
        for index, (images, masks) in enumerate(self.train_loader):
            if on_batch is not None:
                on_batch(images, masks)
            group_start = (index // accumulate) * accumulate
            group_size = min(accumulate, n_batches - group_start)

            loss = self._forward_loss(self.model, images, masks)
            if not torch.isfinite(loss):
                if self.scaler is None:
                    raise TrainingDivergedError(
                        f"training loss is {loss.item()} at epoch {self.epoch + 1}, batch "
                        f"{index + 1}; lower optim.lr or set optim.grad_clip"
                    )
            else:
                loss_sum += loss.detach().double()
                counted += 1
            self._backward(loss / group_size)
            if index + 1 == group_start + group_size:
                self._optimizer_step()

        if counted == 0:
            raise TrainingDivergedError(f"every training loss of epoch {self.epoch + 1} was NaN or infinite")
        return float(loss_sum) / counted

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Return ``val_loss``, ``val_dice`` and ``dice/<class>`` of the evaluated weights.

        NOTE: the Dice is measured at ``input_size``, not at the original image resolution that
        the competition scores, so it can differ from the score of a submission.
        """
        model = self.eval_model()
        model.eval()
        loss_sum = 0.0
        n_images = 0
        rows: list[torch.Tensor] = []
        for images, masks in self.val_loader:
            logits = self._forward_logits(model, images)
            targets = masks.to(self.device).float()
            loss_sum += float(self.loss_fn(logits, targets)) * len(images)
            n_images += len(images)
            rows.append(dice_per_image_class(logits_to_masks(logits), targets > 0.5).cpu())

        table = torch.cat(rows)
        return {
            "val_loss": loss_sum / n_images,
            "val_dice": mean_dice(table),
            **per_class_metrics(table),
        }

    def run_epoch(self) -> dict[str, float]:
        """Train and validate one epoch; return its metrics.

        Keys: ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``val_dice``, ``dice/<class>``
        for each of the 29 classes, ``lr`` (at the end of the epoch), ``epoch_time_s``,
        ``best_val_dice`` and ``best_epoch``.
        """
        start = time.perf_counter()
        train_loss = self.train_epoch()
        val_metrics = self.validate()
        self.epoch += 1

        val_dice = val_metrics["val_dice"]
        self.is_best = val_dice > self.best_val_dice
        if self.is_best:
            self.best_val_dice, self.best_epoch = val_dice, self.epoch
        return {
            "epoch": self.epoch,
            "train_loss": train_loss,
            **val_metrics,
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_time_s": time.perf_counter() - start,
            "best_val_dice": self.best_val_dice,
            "best_epoch": self.best_epoch,
        }

    # -- weights and state -------------------------------------------------------------------

    def eval_model(self) -> nn.Module:
        """Return the weights that validation uses: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    def save_model(self, path: str | Path, metrics: Mapping[str, Any]) -> Path:
        """Write ``model.pt`` with the evaluated weights, the config and ``metrics``."""
        return save_checkpoint(path, self.eval_model(), self.config, self.epoch, metrics)

    def save_checkpoint_dir(self, directory: str | Path, metrics: Mapping[str, Any]) -> Path:
        """Write ``model.pt``, ``training_state.pt`` and ``metrics.json`` into ``directory``."""
        return save_checkpoint_dir(
            directory, self.eval_model(), self.config, self.epoch, metrics, self.training_state()
        )

    def training_state(self) -> dict[str, Any]:
        """Return everything :meth:`load_training_state` needs to continue after this epoch."""
        return {
            "epoch": self.epoch,
            "best_val_dice": self.best_val_dice,
            "best_epoch": self.best_epoch,
            "model": _cpu_state(self.model.state_dict()),
            "ema": _cpu_state(self.ema.state_dict()) if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": capture_rng_state(),
            "train_generator": self.train_generator.get_state(),
            "val_generator": self.val_generator.get_state(),
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a state saved by :meth:`training_state` (same config).

        Raises:
            ValueError: the state has EMA weights but EMA is off in the config, or the reverse.
        """
        if (state["ema"] is None) != (self.ema is None):
            raise ValueError(
                "the training state and the config disagree on EMA (config ema: "
                f"{self.config['ema']!r}); resume with the config the state was saved with"
            )
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.train_generator.set_state(state["train_generator"])
        self.val_generator.set_state(state["val_generator"])
        self.epoch = int(state["epoch"])
        self.best_val_dice = float(state["best_val_dice"])
        self.best_epoch = int(state["best_epoch"])
        logger.info("resumed after epoch %d (best Dice %.4f at epoch %d)", self.epoch, self.best_val_dice, self.best_epoch)

    def close(self) -> None:
        """Release the model, optimizer and loaders, and return cached GPU memory."""
        for name in ("model", "ema", "optimizer", "scheduler", "scaler", "train_loader", "val_loader"):
            setattr(self, name, None)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- steps -------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, shuffle: bool, generator: torch.Generator) -> DataLoader:
        batch_size = self.config["optim"]["batch_size"]
        workers = self.config["data"]["num_workers"]
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            # A last batch of one image breaks BatchNorm after global pooling (PSPNet, DeepLab).
            drop_last=shuffle and len(dataset) > batch_size,
        )

    def _forward_logits(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            return model(images)

    def _forward_loss(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits = self._forward_logits(model, images)
        return self.loss_fn(logits, masks.to(self.device, non_blocking=True).float())

    def _backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _optimizer_step(self) -> None:
        grad_clip = self.config["optim"]["grad_clip"]
        if self.scaler is not None:
            if grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), grad_clip)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)


def train(
    config: Mapping[str, Any],
    reporter: Reporter | None = None,
    *,
    resume_state: Mapping[str, Any] | None = None,
    datasets: tuple[Dataset, Dataset] | None = None,
) -> TrainSummary:
    """Train one config for ``optim.epochs`` epochs, calling ``reporter`` after each.

    Args:
        config: a training config; it is resolved and validated with absolute paths required.
        reporter: ``reporter(metrics, trainer)`` after every epoch (see
            :meth:`Trainer.run_epoch` for the keys); it may save checkpoints through
            ``trainer.save_checkpoint_dir`` or ``trainer.save_model``.
        resume_state: a training state (``training_state.pt``) to continue from; training
            starts at the epoch after the saved one.
        datasets: ``(train, val)`` datasets to use instead of :func:`build_datasets`.

    Returns:
        The :class:`TrainSummary`.
    """
    resolved = resolve_config(config, require_absolute=True)
    train_set, val_set = datasets if datasets is not None else build_datasets(resolved)
    trainer = Trainer(resolved, train_set, val_set)
    try:
        if resume_state is not None:
            trainer.load_training_state(resume_state)
        metrics: dict[str, float] = {}
        first_epoch = trainer.epoch
        for _ in range(first_epoch, resolved["optim"]["epochs"]):
            metrics = trainer.run_epoch()
            logger.info(
                "epoch %d/%d: train_loss %.4f, val_loss %.4f, val_dice %.4f, %.1f s",
                metrics["epoch"],
                resolved["optim"]["epochs"],
                metrics["train_loss"],
                metrics["val_loss"],
                metrics["val_dice"],
                metrics["epoch_time_s"],
            )
            if reporter is not None:
                reporter(metrics, trainer)
        return TrainSummary(
            best_val_dice=trainer.best_val_dice,
            best_epoch=trainer.best_epoch,
            epochs_run=trainer.epoch - first_epoch,
            last_metrics=metrics,
        )
    finally:
        trainer.close()


def _cpu_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in state.items()}
