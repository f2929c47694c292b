"""Loading a checkpoint together with its data, as the model-consuming commands do."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from ..base_model import make_loader
from ..checkpoint import ModelRecord, load_checkpoint, model_fingerprint
from ..errors import ArchRepairError
from ..data import FailureSplit, ImageData, load_data, select_failures
from ..data.corrupted import corrupted_test
from ..device import resolve_device
from ..evaluate import predict_logits


@dataclass
class LoadedModel:
    model: torch.nn.Module
    record: ModelRecord
    data: ImageData
    device: torch.device
    args: argparse.Namespace
    fingerprint: str = ""

    def load_split(self, path: str, own: bool = True) -> FailureSplit:
        """The failure split in file ``path``, checked to be whole and to come from this data; with
        ``own``, from this model's failures (or those of a model it was repaired from) too."""
        split = FailureSplit.load(path)
        split.check(repr(str(path)), len(self.data.y_test))
        if split.data_fingerprint and split.data_fingerprint != self.data.fingerprint:
            raise ArchRepairError(f"failure split {str(path)!r} was made on other data (fingerprint "
                                  f"{split.data_fingerprint}, this data {self.data.fingerprint}); use the data it was made from")
        known = {self.fingerprint, *self.record.lineage}
        if own and split.model_fingerprint and split.model_fingerprint not in known:
            raise ArchRepairError(f"failure split {str(path)!r} holds the failures of another model (fingerprint "
                                  f"{split.model_fingerprint}, this model {self.fingerprint}); make this model's split "
                                  f"with `archrepair failures {self.args.checkpoint}`")
        return split

    def test_predictions(self, description: str = "predicting") -> np.ndarray:
        """Predicted labels ``(N_test,)`` over the whole test split."""
        self.model.to(self.device, memory_format=torch.channels_last if self.args.channels_last else torch.preserve_format)
        loader = make_loader(self.data, "test", self.record, batch_size=self.args.batch_size, device=self.device,
                             channels_last=self.args.channels_last)
        return predict_logits(self.model, loader, self.args.amp, progress=description).argmax(1).numpy()


def load_model_and_data(args: argparse.Namespace) -> LoadedModel:
    """The checkpoint ``args.checkpoint`` and the data ``args.data`` (default: its training data), checked to fit."""
    device = resolve_device(args.device)
    model, record = load_checkpoint(args.checkpoint, device)
    data = load_data(args.data or record.data.get("spec", ""))
    record.check_fits(data)
    if getattr(args, "corruption", None):
        data = corrupted_test(data, args.corruption, args.severity, args.corruption_seed, args.corruption_dir)
    return LoadedModel(model, record, data, device, args, model_fingerprint(args.checkpoint))


def failure_split_for(loaded: LoadedModel, failures: str | None, count: int, seed: int) -> FailureSplit:
    """The split in the file ``failures`` (checked to come from ``loaded.data``), or ``count``
    failures of the loaded model chosen now with ``seed``."""
    if failures:
        return loaded.load_split(failures)
    split = select_failures(loaded.test_predictions("finding failures"), loaded.data.y_test, count, seed)
    split.data_spec, split.data_fingerprint = loaded.data.spec, loaded.data.fingerprint
    split.model_fingerprint = loaded.fingerprint
    return split
