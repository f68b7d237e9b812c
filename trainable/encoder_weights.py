"""Pretrained encoder weights: ImageNet files from the Hugging Face Hub, or a local file.

``imagenet`` weights come from the Hub repositories that smp 0.6 and timm 1.0 use. For an smp
encoder that is ``model.safetensors`` of ``smp-hub/<encoder>.imagenet`` at the revision smp
pins. For a ``tu-`` encoder it is the file of timm's default pretrained tag
(``timm/<model>.<tag>``). A file already in the local Hugging Face cache is used without any
network access. Otherwise one metadata request with a 5 s timeout and no retry checks that the
Hub is reachable before the download. Offline (``HF_HUB_OFFLINE=1``, or no response) this fails at once with a message that
names the next step, instead of the retries with 60 s timeouts that huggingface_hub 2.4 makes
when a file is not cached.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import segmentation_models_pytorch as smp
import timm
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import load_file as load_safetensors
from torch import nn

__all__ = [
    "IMAGENET",
    "PROBE_TIMEOUT_S",
    "EncoderWeightsError",
    "HubFile",
    "LoadReport",
    "hub_cache_dir",
    "imagenet_hub_files",
    "is_offline",
    "load_encoder_state",
    "read_state_dict",
    "resolve_imagenet_file",
]

logger = logging.getLogger(__name__)

IMAGENET = "imagenet"
"""The ``model.encoder_weights`` value that selects the encoder's ImageNet weights."""

PROBE_TIMEOUT_S = 5.0
"""Timeout in seconds of the single request that checks whether the Hub is reachable."""

_TRUE_WORDS = {"1", "on", "yes", "true"}


class EncoderWeightsError(ValueError):
    """Encoder weights cannot be found, downloaded or loaded. The message names the next step."""


@dataclass(frozen=True)
class HubFile:
    """One file in a Hugging Face Hub repository; ``revision`` None means the main branch."""

    repo_id: str
    filename: str
    revision: str | None = None


@dataclass(frozen=True)
class LoadReport:
    """Outcome of :func:`load_encoder_state`: encoder keys left at their initial values, file
    keys the encoder does not have, and the keys whose input channels were summed."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    summed_input_channels: tuple[str, ...]


def is_offline() -> bool:
    """Return whether Hub access is switched off (``HF_HUB_OFFLINE`` read now, or at import)."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().lower() in _TRUE_WORDS or bool(hub_constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """Return the Hugging Face Hub cache folder, reading ``HF_HUB_CACHE`` and ``HF_HOME`` now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(hub_constants.HF_HUB_CACHE)


def imagenet_hub_files(encoder: str) -> list[HubFile]:
    """Return the Hub files that hold ``encoder``'s ImageNet weights, in order of preference.

    Raises:
        EncoderWeightsError: smp or timm publishes no ImageNet weights for ``encoder``.
    """
    if encoder.startswith("tu-"):
        model_name = encoder[3:]
        pretrained = timm.models.get_pretrained_cfg(model_name)
        hub_id = getattr(pretrained, "hf_hub_id", None) if pretrained is not None else None
        if not hub_id:
            raise EncoderWeightsError(
                f"timm {timm.__version__} has no pretrained weights on the Hugging Face Hub for "
                f"{model_name!r}; set model.encoder_weights to a local weights file or to null"
            )
        repo_id, _, revision = hub_id.partition("@")
        # timm prefers the safetensors file and falls back to the PyTorch pickle.
        return [
            HubFile(repo_id, "model.safetensors", revision or None),
            HubFile(repo_id, "pytorch_model.bin", revision or None),
        ]

    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if IMAGENET not in settings:
        raise EncoderWeightsError(
            f"smp {smp.__version__} has no 'imagenet' weights for encoder {encoder!r} (it has: "
            f"{', '.join(settings) or 'none'}); choose another encoder, a local weights file or "
            "null for model.encoder_weights"
        )
    hub = settings[IMAGENET]
    return [HubFile(hub["repo_id"], "model.safetensors", hub["revision"])]


def resolve_imagenet_file(encoder: str) -> Path:
    """Return a local path of ``encoder``'s ImageNet weights, downloading them if needed.

    Raises:
        EncoderWeightsError: offline and not cached, the Hub is unreachable, or the download
            failed; the message names the repository and how to proceed.
    """
    candidates = imagenet_hub_files(encoder)
    cache_dir = hub_cache_dir()
    for candidate in candidates:
        cached = try_to_load_from_cache(
            candidate.repo_id, candidate.filename, cache_dir=cache_dir, revision=candidate.revision
        )
        if isinstance(cached, str):
            logger.info("using cached ImageNet weights %s for %s", cached, encoder)
            return Path(cached)

    if is_offline():
        raise EncoderWeightsError(
            _unavailable_message(encoder, candidates[0], cache_dir, "HF_HUB_OFFLINE is set")
        )
    first = candidates[0]
    try:
        get_hf_file_metadata(
            hf_hub_url(first.repo_id, first.filename, revision=first.revision),
            timeout=PROBE_TIMEOUT_S,
        )
    except EntryNotFoundError:
        pass  # the Hub is reachable, and the next candidate file may exist
    except Exception as error:  # noqa: BLE001 - any failure here means: no usable connection
        reason = f"the Hugging Face Hub did not answer ({type(error).__name__}: {error})"
        raise EncoderWeightsError(_unavailable_message(encoder, first, cache_dir, reason)) from None

    for candidate in candidates:
        try:
            path = hf_hub_download(
                candidate.repo_id,
                candidate.filename,
                revision=candidate.revision,
                cache_dir=cache_dir,
            )
        except EntryNotFoundError:
            continue
        except Exception as error:  # noqa: BLE001 - report every download failure the same way
            reason = f"the download failed ({type(error).__name__}: {error})"
            raise EncoderWeightsError(
                _unavailable_message(encoder, candidate, cache_dir, reason)
            ) from None
        logger.info("downloaded ImageNet weights %s for %s", path, encoder)
        return Path(path)
    raise EncoderWeightsError(
        f"none of {[c.filename for c in candidates]} exists in the Hub repository "
        f"{candidates[0].repo_id}; set model.encoder_weights to a local weights file or null"
    )


def _unavailable_message(encoder: str, hub_file: HubFile, cache_dir: Path, reason: str) -> str:
    revision = f" (revision {hub_file.revision})" if hub_file.revision else ""
    return (
        f"cannot load ImageNet weights for encoder {encoder!r}: {hub_file.filename} of the "
        f"Hugging Face Hub repository {hub_file.repo_id}{revision} is not in the local cache "
        f"{cache_dir}, and {reason}. To proceed, either download that file on a machine with "
        "internet access and set `model.encoder_weights: /path/to/" + hub_file.filename + "`, "
        "or copy a Hugging Face cache that contains it to HF_HOME, or set "
        "`model.encoder_weights: null` to train from random initialisation"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from a ``.safetensors`` file or a ``torch.save`` file.

    A file holding ``{"state_dict": ...}`` or ``{"model": ...}`` (common checkpoint layouts)
    is unwrapped. Pickled files load with ``weights_only=True``.

    Raises:
        EncoderWeightsError: the file is missing, unreadable, or contains no tensor mapping.
    """
    file_path = Path(path)
    try:
        if file_path.suffix == ".safetensors":
            content: object = load_safetensors(str(file_path), device="cpu")
        else:
            content = torch.load(file_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EncoderWeightsError(f"encoder weights file {file_path} not found") from None
    except Exception as error:  # noqa: BLE001 - torch.load raises many types on a bad file
        raise EncoderWeightsError(
            f"cannot read encoder weights file {file_path}: {type(error).__name__}: {error}"
        ) from None

    for wrapper_key in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(wrapper_key), dict):
            content = content[wrapper_key]
    if not isinstance(content, dict) or not all(torch.is_tensor(v) for v in content.values()):
        raise EncoderWeightsError(
            f"encoder weights file {file_path} does not hold a state_dict (a mapping of names "
            "to tensors)"
        )
    return content


def load_encoder_state(
    encoder: nn.Module, state_dict: dict[str, torch.Tensor], source: str | os.PathLike = "state_dict"
) -> LoadReport:
    """Load ``state_dict`` into ``encoder`` by key, logging missing and unexpected keys.

    Keys may carry a ``module.`` or ``encoder.`` prefix (a DataParallel or a whole smp model's
    state_dict); the prefix that matches most encoder keys is stripped. A convolution weight
    with more input channels than the encoder's single-channel stem is summed over its input
    channels, as smp does for ``in_channels=1``.

    Returns:
        The :class:`LoadReport`.

    Raises:
        EncoderWeightsError: no key matches, or a matching key has another shape.
    """
    own = encoder.state_dict()
    renamed = _strip_best_prefix(state_dict, own)
    matched: dict[str, torch.Tensor] = {}
    summed: list[str] = []
    wrong_shape: list[str] = []
    for key, tensor in renamed.items():
        if key not in own:
            continue
        target = own[key]
        if tensor.shape == target.shape:
            matched[key] = tensor
        elif _is_summable_stem(tensor, target):
            matched[key] = tensor.sum(dim=1, keepdim=True)
            summed.append(key)
        else:
            wrong_shape.append(f"{key}: file {tuple(tensor.shape)}, encoder {tuple(target.shape)}")

    if wrong_shape:
        raise EncoderWeightsError(
            f"encoder weights file {source} does not fit this encoder; shapes differ for "
            f"{len(wrong_shape)} keys, first: {'; '.join(wrong_shape[:3])}"
        )
    if not matched:
        raise EncoderWeightsError(
            f"no key of encoder weights file {source} matches the encoder (file keys such as "
            f"{list(state_dict)[:3]}, encoder keys such as {list(own)[:3]}); use a file made for "
            "this encoder"
        )

    encoder.load_state_dict(matched, strict=False)
    report = LoadReport(
        missing=tuple(key for key in own if key not in matched),
        unexpected=tuple(key for key in renamed if key not in own),
        summed_input_channels=tuple(summed),
    )
    _log_report(report, source, len(matched))
    return report


def _strip_best_prefix(
    state_dict: dict[str, torch.Tensor], own: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    best = state_dict
    best_hits = sum(key in own for key in state_dict)
    for prefix in ("module.", "encoder.", "module.encoder."):
        stripped = {
            key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)
        }
        hits = sum(key in own for key in stripped)
        if hits > best_hits:
            best, best_hits = stripped, hits
    return best


def _is_summable_stem(tensor: torch.Tensor, target: torch.Tensor) -> bool:
    return (
        tensor.ndim == 4
        and target.ndim == 4
        and target.shape[1] == 1
        and tensor.shape[0] == target.shape[0]
        and tensor.shape[2:] == target.shape[2:]
    )


def _log_report(report: LoadReport, source: str | os.PathLike, n_loaded: int) -> None:
    logger.info("loaded %d encoder tensors from %s", n_loaded, source)
    if report.summed_input_channels:
        logger.info(
            "summed the input channels of %s into one grayscale channel",
            ", ".join(report.summed_input_channels),
        )
    if report.missing:
        logger.warning(
            "%d encoder keys are not in %s and keep their initial values: %s",
            len(report.missing),
            source,
            ", ".join(report.missing[:10]) + (" ..." if len(report.missing) > 10 else ""),
        )
    if report.unexpected:
        logger.warning(
            "%d keys of %s are not in the encoder and were ignored: %s",
            len(report.unexpected),
            source,
            ", ".join(report.unexpected[:10]) + (" ..." if len(report.unexpected) > 10 else ""),
        )
