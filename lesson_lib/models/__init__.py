"""The model families and a registry that builds any of them from a config dict.

    build_model({"family": "gpt", "vocab_size": 65, "n_layer": 4})
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..config import from_dict
from .base import LanguageModel
from .bigram import Bigram, BigramConfig
from .gpt import GPT, GPTConfig
from .lstm import LSTM, LSTMConfig
from .mlp import MLP, MLPConfig
from .word2vec import SkipGram, Word2VecConfig

# family name -> (config class, model class); every one is a LanguageModel
FAMILIES: dict[str, tuple[type, type[LanguageModel]]] = {
    "bigram": (BigramConfig, Bigram),
    "mlp": (MLPConfig, MLP),
    "lstm": (LSTMConfig, LSTM),
    "gpt": (GPTConfig, GPT),
}


def model_config(spec: dict[str, Any]):
    """The family's frozen config from a dict with a "family" key and that family's fields."""
    spec = dict(spec)
    family = spec.pop("family", None)
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of: {', '.join(FAMILIES)}")
    return from_dict(FAMILIES[family][0], spec)


def build_model(spec: dict[str, Any]) -> LanguageModel:
    """A freshly initialised model from {"family": ..., **config fields}."""
    config = model_config(spec)
    family = spec["family"]
    return FAMILIES[family][1](config)


def model_spec(model: LanguageModel) -> dict[str, Any]:
    """The dict `build_model` takes to rebuild `model`'s architecture."""
    for family, (config_cls, model_cls) in FAMILIES.items():
        if type(model) is model_cls:
            return {"family": family, **dataclasses.asdict(model.config)}
    raise TypeError(f"{type(model).__name__} is not a registered language model")


__all__ = ["FAMILIES", "LanguageModel", "build_model", "model_config", "model_spec", "Bigram", "BigramConfig",
           "MLP", "MLPConfig", "LSTM", "LSTMConfig", "GPT", "GPTConfig", "SkipGram", "Word2VecConfig"]
