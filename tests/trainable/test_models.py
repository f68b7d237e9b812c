"""Model factory: build-and-forward table, name errors, input checks, encoder weights offline."""

from __future__ import annotations

import logging

import pytest
import segmentation_models_pytorch as smp
import timm
import torch
from safetensors.torch import save_file

from data.classes import NUM_CLASSES
from trainable.encoder_weights import (
    EncoderWeightsError,
    imagenet_hub_files,
    load_encoder_state,
)
from trainable.models import (
    ARCHITECTURES,
    ENCODER_FAMILIES,
    ENCODERS,
    ModelConfigError,
    build_model,
    check_model_names,
    create_model,
)

# Small encoders of every family, each paired with a different architecture.
BUILD_TABLE = [
    ("Unet", "resnet18"),
    ("UnetPlusPlus", "resnet18"),
    ("FPN", "efficientnet-b0"),
    ("DeepLabV3Plus", "resnet18"),
    ("DeepLabV3", "tu-convnext_atto"),
    ("UPerNet", "tu-convnext_atto"),
    ("Segformer", "mit_b0"),
    ("Unet", "tu-hrnet_w18_small"),
    ("FPN", "tu-efficientnet_b0"),
    ("MAnet", "tu-mobilenetv3_small_050"),
    ("Linknet", "resnet18"),
    ("PSPNet", "resnet18"),
]


@pytest.mark.parametrize(("architecture", "encoder"), BUILD_TABLE)
def test_build_and_forward(architecture, encoder):
    model = create_model(architecture, encoder, None).eval()
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (2, NUM_CLASSES, 64, 64)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_build_model_reads_model_section():
    config = {"model": {"architecture": "Linknet", "encoder": "resnet18", "encoder_weights": None}}
    model = build_model(config)
    assert isinstance(model, smp.Linknet)
    assert model.encoder.conv1.in_channels == 1


def test_catalogue_covers_required_names():
    for name in ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "UPerNet", "Segformer"):
        assert name in ARCHITECTURES
    for family in ("resnet", "resnext", "efficientnet", "convnext", "hrnet"):
        assert ENCODER_FAMILIES[family]
    assert len(ENCODERS) == len(set(ENCODERS))


@pytest.mark.parametrize("encoder", ENCODERS)
def test_offered_encoders_exist(encoder):
    if encoder.startswith("tu-"):
        assert timm.is_model(encoder[3:])
        assert timm.models.is_model_pretrained(encoder[3:])
    else:
        assert "imagenet" in smp.encoders.encoders[encoder]["pretrained_settings"]


@pytest.mark.parametrize(
    ("architecture", "encoder", "expected"),
    [
        ("unet", "resnet18", "did you mean 'Unet'?"),
        ("Unett", "resnet18", "valid architectures: Unet, UnetPlusPlus"),
        ("Unet", "resnet19", "did you mean 'resnet18'?"),
        ("Unet", "tu-convnext_tinyy", "did you mean 'tu-convnext_tiny'?"),
        ("Unet", "no_such_encoder", "offered encoders: resnet18"),
        ("DeepLabV3Plus", "tu-hrnet_w18", "dilated mode"),
    ],
)
def test_invalid_names_raise(architecture, encoder, expected):
    with pytest.raises(ModelConfigError) as error:
        check_model_names(architecture, encoder)
    assert expected in str(error.value)


def test_any_timm_encoder_is_accepted():
    check_model_names("Unet", "tu-resnet10t")
    check_model_names("Unet", "densenet121")


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 1, 100, 64), "height 100 is not a multiple of 32; nearest valid sizes: 96 or 128"),
        ((1, 1, 64, 20), "width 20 is not a multiple of 32; nearest valid sizes: 32"),
        ((1, 3, 64, 64), "expected a (N, 1, H, W) image tensor"),
        ((1, 64, 64), "expected a (N, 1, H, W) image tensor"),
    ],
)
def test_bad_input_shape_raises(shape, expected):
    model = create_model("Unet", "resnet18").eval()
    with pytest.raises(ValueError) as error:
        model(torch.rand(shape))
    assert expected in str(error.value)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """Offline mode with empty Hugging Face and torch caches in tmp_path: nothing can download."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "hf" / "hub"


@pytest.mark.parametrize("encoder", ["resnet18", "tu-convnext_atto"])
def test_imagenet_offline_fails_with_advice(offline_hub, encoder):
    with pytest.raises(EncoderWeightsError) as error:
        create_model("Unet", encoder, "imagenet")
    message = str(error.value)
    assert "HF_HUB_OFFLINE is set" in message
    assert "model.encoder_weights: null" in message
    assert "model.encoder_weights: /path/to/model.safetensors" in message
    assert str(offline_hub) in message


def test_imagenet_without_smp_weights_lists_available():
    with pytest.raises(EncoderWeightsError, match=r"has no 'imagenet' weights .* ssl, swsl"):
        imagenet_hub_files("resnext101_32x4d")


def test_imagenet_offline_reads_cached_file(offline_hub):
    reference = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1).encoder
    hub_file = imagenet_hub_files("resnet18")[0]
    snapshot = (
        offline_hub
        / f"models--{hub_file.repo_id.replace('/', '--')}"
        / "snapshots"
        / hub_file.revision
    )
    snapshot.mkdir(parents=True)
    save_file(reference.state_dict(), str(snapshot / hub_file.filename))

    model = create_model("Unet", "resnet18", "imagenet")

    expected_stem = reference.conv1.weight.sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.encoder.conv1.weight, expected_stem)
    torch.testing.assert_close(model.encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_local_file_loads_and_reports_keys(tmp_path, caplog):
    reference = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1).encoder
    state = dict(reference.state_dict())
    state["fc.weight"] = torch.zeros(10, 512)
    del state["layer4.1.bn2.running_var"]
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)

    with caplog.at_level(logging.WARNING, logger="trainable.encoder_weights"):
        model = create_model("FPN", "resnet18", str(path))

    torch.testing.assert_close(model.encoder.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    assert "fc.weight" in caplog.text
    assert "layer4.1.bn2.running_var" in caplog.text


def test_load_encoder_state_report(tmp_path):
    reference = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1)
    encoder = create_model("Unet", "resnet18").encoder
    # A whole smp model's state_dict: the encoder keys carry an "encoder." prefix.
    report = load_encoder_state(encoder, reference.state_dict(), source="whole model")
    assert report.summed_input_channels == ("conv1.weight",)
    assert report.missing == ()
    assert report.unexpected == ()


def test_local_file_for_timm_encoder(tmp_path):
    reference = timm.create_model("convnext_atto", pretrained=False)
    path = tmp_path / "convnext_atto.safetensors"
    save_file(reference.state_dict(), str(path))

    model = create_model("UPerNet", "tu-convnext_atto", str(path))

    torch.testing.assert_close(
        model.encoder.model.stem_0.weight, reference.stem[0].weight.sum(dim=1, keepdim=True)
    )


def test_mismatched_timm_file_raises(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), str(path))
    with pytest.raises(EncoderWeightsError) as error:
        create_model("Unet", "tu-convnext_atto", str(path))
    assert f"timm cannot load weights file {path} into encoder 'tu-convnext_atto'" in str(error.value)


def test_unreadable_timm_file_raises(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_text("not weights")
    with pytest.raises(EncoderWeightsError, match="cannot read encoder weights file"):
        create_model("Unet", "tu-convnext_atto", str(path))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        ({"unrelated.weight": torch.zeros(3)}, "no key of encoder weights file"),
        ({"conv1.weight": torch.zeros(8, 3, 3, 3)}, "shapes differ"),
    ],
)
def test_bad_local_file_raises(tmp_path, content, expected):
    path = tmp_path / "weights.pth"
    if content is not None:
        torch.save(content, path)
    with pytest.raises(EncoderWeightsError) as error:
        create_model("Unet", "resnet18", str(path))
    assert expected in str(error.value)
