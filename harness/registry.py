"""Name → object registries (methods, their per-dataset configs, tables, protocols).

One file you can read top to bottom, like timm's `register_model`: a method module registers itself once by name
(`register_method`), then its builder and one config factory per dataset on the spec it gets back; everything else
asks for them by name. Unknown names are answered with the list of valid ones, so a typo on the command line tells
the user what exists.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.config import apply_overrides, check_precision, check_schedule
from harness.names import Registry, UnknownNameError

# Modules that register the built-in methods. Imported lazily by name so that nothing in `harness`
# imports `dias` or `baselines` at import time (they sit above the engine in the layering).
BUILTIN_METHOD_MODULES = ("dias", "baselines")


def load_builtin_methods() -> None:
    for module in BUILTIN_METHOD_MODULES:
        importlib.import_module(module)


# The tables every method joins unless it declares its own list (`register_method(..., tables=...)`): the CPU tables
# of every registered method. Tables that publish the authors' numbers or cost hours are joined by naming them.
DEFAULT_TABLES = ("mini-random", "mini-ci", "mini", "recogn-mini")


@dataclass
class MethodSpec:
    """What the registry knows of a method (the contract it honours: harness.contract), registered once by name.

    kind: "learned" (trained by the runner), "reference" (a fixed rule such as a grid, evaluated by the same code) or
    "stage" (a prerequisite such as a VQ-VAE tokenizer, trained once and shared). A config's `stage` names a method
    of a kind in STAGE_KINDS: a "stage", or a "learned" method whose trained model another builds on (SPOT's stage
    1 under its self-training). `subject`: the method the harness exists to judge (DIAS); tables list it first.
    `train_cost`: relative training time of its CPU configs, so that executors start the slowest cells first (a
    scheduling hint, not a result). `authors_label`: the authors' config name with `{dataset}` (e.g.
    "dias_r-{dataset}"), which labels its rows in the authors' tables and names their released checkpoints'
    folders. `tables`: the registered tables whose rows the registry derives that include it.

    The spec registers the builder (`@spec.builder`) and one config factory per dataset (`@spec.config(*datasets)`,
    a function of the dataset name): the method's name is given once, here, and filled into its configs.
    """

    name: str
    kind: str = "learned"
    description: str = ""
    subject: bool = False
    train_cost: float = 1.0
    authors_label: str | None = None
    tables: tuple[str, ...] = DEFAULT_TABLES
    build: Callable | None = None
    configs: dict[str, Callable] = field(default_factory=dict)

    def builder(self, build: Callable) -> Callable:
        """Decorator: `build(config, *, pretrained: bool) -> harness.contract.SlotModel`."""
        if self.build is not None:
            raise ValueError(f"method {self.name!r} has a builder already")
        self.build = build
        return build

    def config(self, *datasets: str):
        """Decorator: `factory(dataset) -> the method's config dataclass` for each of `datasets`."""

        def deco(factory: Callable) -> Callable:
            for dataset in datasets:
                if dataset in self.configs:
                    raise ValueError(f"config {self.name}/{dataset} is registered twice")
                self.configs[dataset] = factory
            return factory

        return deco

    def label(self, dataset: str) -> str:
        """The row label of this method on `dataset` in the authors' tables."""
        if self.authors_label is None:
            raise ValueError(f"method {self.name!r} has no authors' label")
        return self.authors_label.format(dataset=dataset)


METHODS: Registry[MethodSpec] = Registry("method", loader=load_builtin_methods)
KINDS = ("learned", "reference", "stage")
STAGE_KINDS = ("stage", "learned")


def register_method(name: str, *, kind: str = "learned", description: str = "", subject: bool = False,
                    train_cost: float = 1.0, authors_label: str | None = None,
                    tables: tuple[str, ...] = DEFAULT_TABLES) -> MethodSpec:
    """Register a method by name; returns its spec, whose `builder` and `config` register the rest."""
    if kind not in KINDS:
        raise ValueError(f"method {name!r}: kind must be one of {KINDS}, got {kind!r}")
    return METHODS.register(name, MethodSpec(name, kind, description, subject, train_cost, authors_label,
                                             tuple(tables)))


def methods_of_kind(kind: str, dataset: str | None = None, table: str | None = None) -> list[str]:
    """Registered methods of `kind` (with a config for `dataset` and joining `table`, if given): the subject first,
    then the order of registration. Tables and contract tests are derived from this, so a new method needs no list
    edited."""
    specs = [METHODS.get(n) for n in METHODS.names()]
    specs = [s for s in specs if s.kind == kind and (dataset is None or dataset in s.configs)
             and (table is None or table in s.tables)]
    return [s.name for s in sorted(specs, key=lambda s: not s.subject)]


def get_config(method: str, dataset: str, overrides: dict | list[str] | None = None):
    """The registered config of `method` on `dataset`, with `overrides` applied (see harness.config). The registry
    fills in the config's `method` and `dataset`: the names it is registered under, never typed twice."""
    spec = METHODS.get(method)
    if dataset not in spec.configs:
        raise UnknownNameError(
            f"method {method!r} has no config for dataset {dataset!r}; valid: {', '.join(sorted(spec.configs))}"
        )
    config = dataclasses.replace(spec.configs[dataset](dataset), method=method, dataset=dataset)
    if overrides:
        return apply_overrides(config, overrides)
    check_schedule(config)
    check_precision(config)
    return config


def create_model(method: str, dataset: str = "synthetic", config=None, *, pretrained: bool = False, **overrides):
    """Build a model by name, timm-style: `create_model("dias", "coco", num_slots=9)`; `pretrained=True` loads the
    pretrained parts its config names (e.g. DINOv2 weights)."""
    if config is None:
        config = get_config(method, dataset, overrides)
    elif overrides:
        config = apply_overrides(config, overrides)
    return METHODS.get(method).build(config, pretrained=pretrained)
