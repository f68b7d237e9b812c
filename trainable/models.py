"""Model factory over segmentation_models_pytorch (smp) 0.6 architectures and encoders.

Every model takes ``(N, 1, H, W)`` float images in [0, 1], with H and W multiples of 32, and
returns ``(N, 29, H, W)`` raw logits, channel ``i`` for ``data.classes.CLASSES[i]``. The task is
multi-label: losses, metrics and predictors apply one sigmoid per channel, never a softmax.

Encoder names follow smp: its own encoders (``resnet34``, ``efficientnet-b3``, ``mit_b2``) and
any timm model behind the ``tu-`` prefix (``tu-convnext_tiny``, ``tu-hrnet_w18``).
:data:`ENCODER_FAMILIES` lists the encoders this project offers to the search; any other smp or
``tu-`` encoder is accepted as well.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from data.classes import NUM_CLASSES
from trainable.encoder_weights import (
    IMAGENET,
    EncoderWeightsError,
    load_encoder_state,
    read_state_dict,
    resolve_imagenet_file,
)

__all__ = [
    "ARCHITECTURES",
    "ENCODERS",
    "ENCODER_FAMILIES",
    "INPUT_MULTIPLE",
    "EncoderWeightsError",
    "ModelConfigError",
    "build_model",
    "check_model_names",
    "create_model",
    "nearest_input_sizes",
]

logger = logging.getLogger(__name__)

_ARCHITECTURE_CLASSES: dict[str, type[nn.Module]] = {
    "Unet": smp.Unet,
    "UnetPlusPlus": smp.UnetPlusPlus,
    "FPN": smp.FPN,
    "DeepLabV3": smp.DeepLabV3,
    "DeepLabV3Plus": smp.DeepLabV3Plus,
    "UPerNet": smp.UPerNet,
    "Segformer": smp.Segformer,
    "MAnet": smp.MAnet,
    "Linknet": smp.Linknet,
    "PSPNet": smp.PSPNet,
}
# NOTE: smp's PAN (fails below 128 px) and DPT (ViT encoders only) are left out.

ARCHITECTURES: tuple[str, ...] = tuple(_ARCHITECTURE_CLASSES)
"""Valid values of ``model.architecture``: smp 0.6 class names."""

ENCODER_FAMILIES: dict[str, tuple[str, ...]] = {
    "resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    "resnext": ("resnext50_32x4d", "resnext101_32x8d"),
    "efficientnet": tuple(f"efficientnet-b{i}" for i in range(8))
    + tuple(f"tu-efficientnet_b{i}" for i in range(6))
    + ("tu-tf_efficientnetv2_s", "tu-tf_efficientnetv2_m"),
    "convnext": (
        "tu-convnext_atto",
        "tu-convnext_femto",
        "tu-convnext_pico",
        "tu-convnext_nano",
        "tu-convnext_tiny",
        "tu-convnext_small",
        "tu-convnext_base",
        "tu-convnextv2_atto",
        "tu-convnextv2_nano",
        "tu-convnextv2_tiny",
    ),
    "hrnet": (
        "tu-hrnet_w18_small",
        "tu-hrnet_w18_small_v2",
        "tu-hrnet_w18",
        "tu-hrnet_w30",
        "tu-hrnet_w32",
        "tu-hrnet_w48",
        "tu-hrnet_w64",
    ),
    "mix_transformer": tuple(f"mit_b{i}" for i in range(6)),
}
"""Encoders offered to the search, by family. All have ImageNet weights in smp 0.6 or timm."""

ENCODERS: tuple[str, ...] = tuple(name for names in ENCODER_FAMILIES.values() for name in names)
"""Flat tuple of :data:`ENCODER_FAMILIES`."""

INPUT_MULTIPLE = 32
"""Image height and width must be multiples of this: the encoders downsample five times by 2."""

# Encoders without a dilated (output stride 8 or 16) mode, which DeepLabV3 and DeepLabV3Plus need.
_NO_DILATION_MARKERS = ("hrnet",)
_DILATED_ARCHITECTURES = ("DeepLabV3", "DeepLabV3Plus")


class ModelConfigError(ValueError):
    """An unknown architecture or encoder, or a pair that smp cannot build."""


def check_model_names(architecture: str, encoder: str) -> None:
    """Raise ModelConfigError unless smp 0.6 can build ``architecture`` with ``encoder``.

    An unknown name gets the list of valid ones and the nearest match.
    """
    if architecture not in _ARCHITECTURE_CLASSES:
        raise ModelConfigError(
            f"unknown architecture {architecture!r}{_suggest(architecture, ARCHITECTURES)}; "
            f"valid architectures: {', '.join(ARCHITECTURES)}"
        )
    if not _is_known_encoder(encoder):
        candidates = list(ENCODERS) + smp.encoders.get_encoder_names() + _timm_encoder_names()
        raise ModelConfigError(
            f"unknown encoder {encoder!r}{_suggest(encoder, candidates)}; offered encoders: "
            f"{', '.join(ENCODERS)}; any other smp encoder "
            f"({', '.join(smp.encoders.get_encoder_names())}) or 'tu-' followed by a timm model "
            "name (timm.list_models()) works as well"
        )
    if architecture in _DILATED_ARCHITECTURES and any(m in encoder for m in _NO_DILATION_MARKERS):
        raise ModelConfigError(
            f"{architecture} needs an encoder with a dilated mode (output stride 8 or 16), which "
            f"{encoder!r} does not have; pair it with Unet, FPN, UPerNet or Segformer, or choose "
            "a ResNet, EfficientNet or ConvNeXt encoder"
        )


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build the model described by the ``model`` section of a resolved training config.

    Args:
        config: a resolved config (see trainable.config); reads ``model.architecture``,
            ``model.encoder`` and ``model.encoder_weights``.

    Returns:
        An smp model in train mode on the CPU: ``(N, 1, H, W)`` in [0, 1] to ``(N, 29, H, W)``
        logits.

    Raises:
        ModelConfigError: unknown names or an incompatible pair.
        EncoderWeightsError: the encoder weights cannot be found, downloaded or loaded. The
            message names the next step.
    """
    model_config = config["model"]
    return create_model(
        model_config["architecture"],
        model_config["encoder"],
        model_config.get("encoder_weights"),
    )


def create_model(
    architecture: str, encoder: str, encoder_weights: str | Path | None = None
) -> nn.Module:
    """Build one smp model with 1 input channel and 29 output logits.

    Args:
        architecture: one of :data:`ARCHITECTURES`.
        encoder: an smp encoder name or ``"tu-<timm model>"``.
        encoder_weights: None for random initialisation, or ``"imagenet"`` for the pretrained
            weights, or the path of a weights file (``.pth``, ``.bin`` or ``.safetensors``).
            ImageNet weights are read from the Hugging Face cache, else downloaded, and fail at
            once when offline.
            For smp encoders the file contains the encoder's state_dict. For ``tu-`` encoders it
            contains the timm model's state_dict, as timm publishes it on the Hub. Both may have 3
            input channels, which are summed into the one grayscale channel.

    Returns:
        The model in train mode on the CPU. A forward pre-hook raises ValueError on an input
        that is not ``(N, 1, H, W)`` with H and W multiples of 32.
    """
    check_model_names(architecture, encoder)
    weights_file = _weights_file(encoder, encoder_weights)
    is_timm_universal = encoder.startswith("tu-")

    kwargs: dict[str, Any] = {
        "encoder_name": encoder,
        "encoder_weights": None,
        "in_channels": 1,
        "classes": NUM_CLASSES,
        "activation": None,
    }
    timm_loads_file = weights_file is not None and is_timm_universal
    if timm_loads_file:
        # timm loads the file itself, because it maps each model's key names and adapts the
        # first convolution to one input channel. Reading it first reports an unreadable file.
        read_state_dict(weights_file)
        kwargs["encoder_weights"] = True
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    model = _construct(architecture, encoder, kwargs, weights_file if timm_loads_file else None)

    if weights_file is not None and not is_timm_universal:
        load_encoder_state(model.encoder, read_state_dict(weights_file), source=weights_file)
    model.register_forward_pre_hook(_check_input)
    return model


def _weights_file(encoder: str, encoder_weights: str | Path | None) -> Path | None:
    if encoder_weights is None:
        return None
    if encoder_weights == IMAGENET:
        return resolve_imagenet_file(encoder)
    path = Path(encoder_weights).expanduser()
    if not path.is_file():
        raise EncoderWeightsError(
            f"encoder weights file {path} not found; set model.encoder_weights to an existing "
            "weights file, to 'imagenet' (needs the Hugging Face cache or internet access), or "
            "to null for random initialisation"
        )
    return path


def _construct(
    architecture: str, encoder: str, kwargs: dict[str, Any], timm_weights_file: Path | None
) -> nn.Module:
    """Instantiate the smp class; ``timm_weights_file`` is the file timm loads during the call."""
    model_class = _ARCHITECTURE_CLASSES[architecture]
    try:
        return model_class(**kwargs)
    except (AssertionError, ValueError, KeyError, RuntimeError) as error:
        if timm_weights_file is not None:
            raise EncoderWeightsError(
                f"timm cannot load weights file {timm_weights_file} into encoder {encoder!r}: "
                f"{type(error).__name__}: {error}; use the state_dict of the timm model "
                f"{encoder[3:]!r}, or set model.encoder_weights to null"
            ) from None
        raise ModelConfigError(
            f"smp cannot build {architecture} with encoder {encoder!r}: "
            f"{error or type(error).__name__}; choose another architecture or encoder"
        ) from error


def _check_input(module: nn.Module, args: tuple[Any, ...]) -> None:
    image = args[0]
    if not torch.is_tensor(image) or image.ndim != 4 or image.shape[1] != 1:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"expected a (N, 1, H, W) image tensor, got {shape}")
    for side, size in (("height", image.shape[2]), ("width", image.shape[3])):
        if size % INPUT_MULTIPLE:
            options = " or ".join(str(s) for s in nearest_input_sizes(size))
            raise ValueError(
                f"input {side} {size} is not a multiple of {INPUT_MULTIPLE}; nearest valid "
                f"sizes: {options} (resize or pad the image)"
            )


def nearest_input_sizes(size: int) -> list[int]:
    """Return the valid sizes (multiples of 32, at least 32) just below and above ``size``."""
    below = max(INPUT_MULTIPLE, (size // INPUT_MULTIPLE) * INPUT_MULTIPLE)
    above = max(INPUT_MULTIPLE, -(-size // INPUT_MULTIPLE) * INPUT_MULTIPLE)
    return sorted({below, above})


def _is_known_encoder(encoder: str) -> bool:
    if not isinstance(encoder, str):
        return False
    if encoder in ENCODERS or encoder in smp.encoders.get_encoder_names():
        return True
    return encoder.startswith("tu-") and timm.is_model(encoder[3:])


def _timm_encoder_names() -> list[str]:
    return ["tu-" + name for name in timm.list_models()]


def _suggest(name: object, candidates: list[str] | tuple[str, ...]) -> str:
    if not isinstance(name, str):
        return ""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[matches[0]]!r}?)" if matches else ""
