"""The base checkpoints every machine has (ResNet-18 in ``../shared/models``, VGG-16 and the MNIST
model committed under ``models/``): they load, and reproduce the test accuracy their records state on
the shared CIFAR-10 (MNIST) copy, so benchmarks and studies on a fresh clone start from the same models."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

NAMES = ["resnet18-w0.25-deployed80", "resnet18-w0.25-converged", "resnet18-w0.25-e21"]
COMMITTED = Path(__file__).resolve().parent.parent / "models"
COMMITTED_NAMES = ["vgg16-w0.25-undertrained", "vgg16-w0.25-converged"]
MNIST_NAME = "mnist-small_cnn-e2"


@pytest.fixture(scope="module")
def cifar10(shared_data, tmp_path_factory):
    from archrepair.data import load_data

    with pytest.MonkeyPatch.context() as patch:  # decode into the session's cache, not the user's
        patch.setenv("ARCHREPAIR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        return load_data(f"imagefolder:{shared_data / 'cifar10' / 'cifar10-jpeg-q75.tar.gz'}")


@pytest.mark.parametrize("name", NAMES + COMMITTED_NAMES)
def test_a_shared_base_model_reproduces_its_recorded_test_accuracy(name, shared_models, cifar10):
    from archrepair.base_model import make_loader
    from archrepair.checkpoint import load_checkpoint
    from archrepair.evaluate import predict_logits

    model, record = load_checkpoint((COMMITTED if name in COMMITTED_NAMES else shared_models) / name)
    assert record.data["fingerprint"] == cifar10.fingerprint
    predictions = predict_logits(model, make_loader(cifar10, "test", record)).argmax(1).numpy()
    accuracy = float((predictions == cifar10.y_test).mean())
    assert abs(accuracy - record.metrics["test_accuracy"]) <= 0.001, (accuracy, record.metrics["test_accuracy"])


def test_the_committed_models_are_the_ones_their_readme_names():
    stated = dict(re.findall(r"`([\w.-]+)/model.safetensors` ([0-9a-f]{64})", (COMMITTED / "README.md").read_text()))
    assert sorted(stated) == sorted(COMMITTED_NAMES + [MNIST_NAME])
    for name, digest in stated.items():
        assert hashlib.sha256((COMMITTED / name / "model.safetensors").read_bytes()).hexdigest() == digest, name
        spec = "npz:../shared/data/mnist/" if name == MNIST_NAME else "imagefolder:../shared/data/"
        assert f'"spec": "{spec}' in (COMMITTED / name / "model.json").read_text()


def test_the_committed_mnist_model_reproduces_its_recorded_test_accuracy(shared_data):
    from archrepair.base_model import make_loader
    from archrepair.checkpoint import load_checkpoint
    from archrepair.data import load_data
    from archrepair.evaluate import predict_logits

    model, record = load_checkpoint(COMMITTED / MNIST_NAME)
    mnist = load_data(f"npz:{shared_data / 'mnist' / 'mnist.npz'}")
    assert record.data["fingerprint"] == mnist.fingerprint
    predictions = predict_logits(model, make_loader(mnist, "test", record)).argmax(1).numpy()
    accuracy = float((predictions == mnist.y_test).mean())
    assert abs(accuracy - record.metrics["test_accuracy"]) <= 0.001, (accuracy, record.metrics["test_accuracy"])
