"""The zoo: every model builds and runs at 32 and 64 pixels, grey and colour; the registry's errors."""

import pytest
import torch

from archrepair import ArchRepairError, get_model, list_models

ZOO = ["resnet18", "resnet50", "resnet101", "vgg16", "densenet121", "efficientnet_b0", "small_cnn"]


def test_registry_lists_the_paper_models_and_the_small_cnn():
    assert set(ZOO) <= set(list_models())


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_model_runs(name, channels, size):
    torch.manual_seed(0)
    model = get_model(name, num_classes=7, in_channels=channels, width=0.125).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, channels, size, size))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_width_multiplier_scales_parameters():
    small = sum(p.numel() for p in get_model("resnet18", width=0.25).parameters())
    large = sum(p.numel() for p in get_model("resnet18", width=0.5).parameters())
    assert 3.5 < large / small < 4.1  # convolutions scale with width squared


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(ArchRepairError, match="unknown model 'resnet19'.*resnet18"):
        get_model("resnet19")


def test_small_cnn_takes_8x8_digits():
    model = get_model("small_cnn", num_classes=10, in_channels=1).eval()
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
