"""Block specs: names resolve, blocks run one after another in spec order and give the model's
logits, replacing a block is seen by the forward pass, bad names fail clearly."""

import copy

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from archrepair import ArchRepairError, get_model
from archrepair.models import block_shapes, default_blocks, get_block, replace_block, resolve_blocks

EXPECTED_COUNTS = {"resnet18": 4, "resnet50": 4, "vgg16": 5, "densenet121": 58, "efficientnet_b0": 7, "small_cnn": 3}


class Recorder(nn.Module):
    """Runs a standalone copy of a block and notes the order in which blocks ran."""

    def __init__(self, name: str, block: nn.Module, log: list[str]) -> None:
        super().__init__()
        self.name, self.block, self.log = name, block, log

    def forward(self, x):
        self.log.append(self.name)
        return self.block(x)


def zoo_and_torchvision():
    yield from ((name, lambda name=name: get_model(name, width=0.125)) for name in EXPECTED_COUNTS)
    yield "tv:resnet18", lambda: tvm.resnet18(num_classes=10)
    yield "tv:vgg11", lambda: tvm.vgg11_bn(num_classes=10)
    yield "tv:efficientnet_b0", lambda: tvm.efficientnet_b0(num_classes=10)
    yield "tv:mobilenet_v2", lambda: tvm.mobilenet_v2(num_classes=10)


@pytest.mark.parametrize("name,build", list(zoo_and_torchvision()), ids=[n for n, _ in zoo_and_torchvision()])
def test_blocks_in_order_reproduce_the_logits(name, build):
    torch.manual_seed(0)
    model = build().eval()
    names = default_blocks(model)
    if name in EXPECTED_COUNTS:
        assert len(names) == EXPECTED_COUNTS[name]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    log: list[str] = []
    rebuilt = copy.deepcopy(model)
    for block_name in names:
        standalone = copy.deepcopy(get_block(model, block_name))
        replace_block(rebuilt, block_name, Recorder(block_name, standalone, log))
    with torch.no_grad():
        got = rebuilt(x)
    assert log == names  # every block ran once, one after another, in spec order
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_torchvision_densenet_blocks_are_its_dense_layers():
    names = default_blocks(tvm.densenet121(num_classes=10))
    assert len(names) == 58 and names[0] == "features.denseblock1.denselayer1"


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "small_cnn"])
def test_replacing_a_block_changes_the_output(name):
    torch.manual_seed(0)
    model = get_model(name, width=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    block = default_blocks(model)[1]
    replace_block(model, block, nn.Sequential(copy.deepcopy(get_block(model, block)), nn.Dropout(1.0).train()))
    assert not torch.allclose(model(x), before)


def test_block_shapes_chain_for_resnet():
    model = get_model("resnet18", width=0.25)
    shapes = block_shapes(model, default_blocks(model), (3, 32, 32))
    assert shapes["layer1"]["input"] == [16, 32, 32]
    assert shapes["layer4"]["output"] == [128, 4, 4]
    for a, b in zip(["layer1", "layer2", "layer3"], ["layer2", "layer3", "layer4"]):
        assert shapes[a]["output"] == shapes[b]["input"]


def test_user_given_blocks_for_an_unknown_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten())
    with pytest.raises(ArchRepairError, match="no automatic block list.*--blocks"):
        default_blocks(model)
    assert resolve_blocks(model, ["0:2", "2"]) == ["0:2", "2"]


def test_unknown_block_lists_the_valid_ones():
    with pytest.raises(ArchRepairError, match="unknown block 'layer5'.*layer1, layer2, layer3, layer4"):
        resolve_blocks(get_model("resnet18", width=0.125), ["layer5"])


def test_bad_slice_is_explained():
    with pytest.raises(ArchRepairError, match="outside 0:"):
        get_block(get_model("vgg16", width=0.125), "features.40:99")
