"""Vulnerable block localisation: neuron spectra, gradients, reweighting (paper section 3.2)."""

from .collect import NeuronStatistics, collect_statistics
from .localize import TOP_LEVELS, BlockRow, LocalizationReport, LocalizeConfig, localize, summarise
from .neurons import NeuronLayer, find_neuron_layers
from .spectrum import FORMULAS, dstar, ochiai, reweight, suspiciousness, tarantula

__all__ = [
    "FORMULAS", "TOP_LEVELS", "BlockRow", "LocalizationReport", "LocalizeConfig", "NeuronLayer",
    "NeuronStatistics", "collect_statistics", "dstar", "find_neuron_layers", "localize", "ochiai",
    "reweight", "summarise", "suspiciousness", "tarantula",
]
