"""Vulnerable block localisation: neuron spectra, gradients, reweighting (paper section 3.2)."""

from .collect import NeuronStatistics, collect_statistics
from .localize import LOCALIZE_ROWS, METHODS, TOP_LEVELS, BlockRow, LocalizationReport, LocalizeConfig, localize, summarise
from .neurons import NeuronLayer, find_neuron_layers
from .registry import Localizer, get_localizer, list_localizers, register_localizer
from .shift import Normaliser, block_shift, find_normalisers
from .spectrum import FORMULAS, dstar, ochiai, reweight, suspiciousness, tarantula

__all__ = [
    "FORMULAS", "LOCALIZE_ROWS", "METHODS", "TOP_LEVELS", "BlockRow", "LocalizationReport", "LocalizeConfig", "NeuronLayer",
    "NeuronStatistics", "Normaliser", "block_shift", "collect_statistics", "dstar", "find_neuron_layers",
    "Localizer", "find_normalisers", "get_localizer", "list_localizers", "localize", "ochiai", "register_localizer",
    "reweight", "summarise", "suspiciousness", "tarantula",
]
