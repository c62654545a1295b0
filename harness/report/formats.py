"""How the report views write numbers and names (shared by markdown, HTML, xlsx and the text table)."""

from __future__ import annotations

import math

from harness.report.content import Stat
from harness.report.frame import display, mean_std_text

METRIC_TITLES = {"ari": "ARI", "ari_fg": "ARI-fg", "mbo": "mBO", "miou": "mIoU"}
COST_TITLES = {
    "train_seconds": "train s", "stage_seconds": "stage s", "total_train_seconds": "total train s",
    "train_images_per_second": "train img/s", "steps": "steps",
    "peak_memory_mb": "peak MiB", "eval_seconds": "eval s", "eval_images_per_second": "eval img/s",
    "parameters": "parameters", "trainable_parameters": "trainable",
}
OWN_INITIALISATION = "its initialisation"  # the beats table's column for a row's own untrained initialisation
NONE = "—"


def stat_text(stat: Stat | None) -> str:
    """"mean±std" in percent as the authors show it, "—" where there is none."""
    return NONE if stat is None else mean_std_text(stat.mean_pct, stat.std_pct)


def signed(value) -> str:
    """A difference in points, one decimal, always signed: "+0.3", "-0.3"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    text = display(value)
    return text if text.startswith("-") else f"+{text}"


def beat_text(failed) -> str:
    """A beats cell: "yes", "no: ARI-fg 50.0 ≤ 60.0, …" or "—" (nothing to compare)."""
    if failed is None:
        return NONE
    if not failed:
        return "yes"
    return "no: " + ", ".join(f"{METRIC_TITLES[m]} {ours:.1f} ≤ {theirs:.1f}" for m, ours, theirs in failed)


def pct(value) -> str:
    """A 0–1 value in percent."""
    return display(value * 100) if value is not None and not math.isnan(value) else NONE


def interval(low, high) -> str:
    """A 0–1 confidence interval in signed points."""
    if math.isnan(low) or math.isnan(high):
        return NONE
    return f"[{signed(low * 100)}, {signed(high * 100)}]"


def number(value) -> str:
    return NONE if value is None or math.isnan(value) else f"{value:.3g}"


def p_value(value) -> str:
    if value is None or math.isnan(value):
        return NONE
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def quantity(value) -> str:
    """A cost: thousands separated, integers as integers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NONE
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"


def listing(values: list) -> str:
    return ", ".join(str(v) for v in values) or NONE


def card_fields(card) -> list[tuple[str, str]]:
    """A data card as (field, shortened text) pairs."""
    if not isinstance(card, dict):
        return [("card", str(card))]
    return [(k, short(_where(v) if k == "path" else v)) for k, v in card.items()]


def _where(path: str) -> str:
    """A data file as <dataset>/<split>.lmdb: the directory it lay in is another machine's (the card's fingerprint
    leaves it out too)."""
    parts = str(path).replace("\\", "/").rstrip("/").split("/")
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else str(path)


def short(value) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 120 else text[:117] + "…"
