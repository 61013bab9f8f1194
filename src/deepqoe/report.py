"""Reports: Markdown tables and PNG plots (matplotlib, no display needed).

A :class:`Report` collects Markdown sections and plots; :meth:`Report.write` writes ``report.md`` and
``results.json`` atomically into the output folder. Plots are drawn with :class:`matplotlib.figure.Figure`
directly (the Agg canvas), so no GUI backend and no global pyplot state is involved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from deepqoe.io import atomic_path, atomic_write_json, atomic_write_text


# --------------------------------------------------------------------------------------------- tables
def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: fixed digits, '-' for missing / NaN."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "-"
    return f"{v:.{digits}f}"


def fmt_pm(mean: Any, std: Any, digits: int = 3) -> str:
    """``mean ± std``."""
    if mean is None:
        return "-"
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def fmt_p(p: Any) -> str:
    """A p-value: 3 significant digits, scientific below 0.001."""
    if p is None:
        return "-"
    p = float(p)
    if not math.isfinite(p):
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` is one letter per column (l / r / c)."""
    headers = [str(h) for h in headers]
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join(sep.get(a, "---") for a in align) + " |"]
    for r in rows:
        cells = [str(c).replace("|", "\\|").replace("\n", " ") for c in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- plots
#: the resolution of the report's figures (dots per inch)
FIGURE_DPI = 110


def _new_figure(w: float = 5.0, h: float = 4.0, dpi: float = FIGURE_DPI):
    """A figure of ``w`` x ``h`` inches at ``dpi``, on the Agg canvas (no GUI backend, no pyplot state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=dpi)


def _save(fig, path: Path) -> Path:
    """``fig`` as a PNG at ``path``, written atomically (at the figure's dpi); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def curves_plot(path: Path, curves: list, sessions: list, labels: list[str], seconds_per_step: list[float],
                scale: str = "1-5", title: str = "Per-second QoE: the score of the first t seconds",
                intervals: list | None = None) -> Path:
    """Per-second QoE curves of sessions on one chart (the score of the first t seconds against t), each
    session's stalls shaded in its colour (media time -> wall time: earlier stalls added). The y axis is fixed,
    the same on every chart of one scale: the bounds of the common 1-5 scale (a model's scores and curves never
    leave them) put on ``scale`` (``lo-hi``: that range; ``z``: -2.5 to 2.5), so that a nearly flat curve looks
    flat and charts of different sessions compare. ``intervals``: per session None or (low, high, level), the
    session score's prediction interval, drawn as a bar at the curve's last point (the score)."""
    from deepqoe.sessions.scales import COMMON_SCALE, from_common, parse_scale

    fig = _new_figure(7.5, 3.8)
    ax = fig.add_subplot(111)
    for k, (c, s, lab, sps) in enumerate(zip(curves, sessions, labels, seconds_per_step)):
        c = np.asarray(c, float)
        ok = np.isfinite(c)
        t = (np.arange(len(c)) + 1) * sps
        line, = ax.plot(t[ok], c[ok], label=lab, lw=1.6)
        iv = intervals[k] if intervals else None
        if iv is not None and ok.any():
            low, high, level = iv
            end, score = t[ok][-1], c[ok][-1]
            ax.errorbar([end], [score], yerr=[[score - low], [high - score]], fmt="o", ms=3, capsize=4,
                        color=line.get_color(), label=f"{lab}: {level:g} interval of the score")
        waited = 0.0
        for st, d in zip(s.stall_start, s.stall_duration):
            a = st + waited
            ax.axvspan(a, a + d, color=line.get_color(), alpha=0.12, lw=0)
            waited += d
    ax.set_xlabel("time since pressing play (s); shaded: stalls")
    ax.set_ylabel(f"predicted QoE so far ({scale})")
    common = parse_scale(COMMON_SCALE)
    lo, hi = from_common([common.lo, common.hi], parse_scale(scale))
    ax.set_ylim(float(lo), float(hi))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(title, fontsize=10)
    import warnings

    with warnings.catch_warnings():  # a label with a character the font lacks (an emoji in an id): drawn as a box
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        _save(fig, path)
    return Path(path)


def scatter_plot(path: Path, y_true, y_pred, title: str = "", xlabel: str = "MOS",
                 ylabel: str = "predicted MOS", groups: Sequence[str] | None = None) -> None:
    """Predicted vs measured, with the identity line; one colour per group when ``groups`` is given."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    fig = _new_figure()
    ax = fig.add_subplot(111)
    if groups is not None:
        groups = np.asarray(groups)
        for g in dict.fromkeys(groups.tolist()):
            m = groups == g
            ax.scatter(y_true[m], y_pred[m], s=10, alpha=0.7, label=str(g))
        ax.legend(fontsize=6, ncol=2, loc="best")
    else:
        ax.scatter(y_true, y_pred, s=8, alpha=0.5)
    lo = float(np.nanmin([y_true.min(), y_pred.min()])) if len(y_true) else 0.0
    hi = float(np.nanmax([y_true.max(), y_pred.max()])) if len(y_true) else 1.0
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def confusion_plot(path: Path, cm, labels: Sequence[str], title: str = "") -> None:
    """A confusion matrix (rows: true, columns: predicted), normalised per row, with the counts."""
    cm = np.asarray(cm, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = _new_figure(4.2, 3.8)
    ax = fig.add_subplot(111)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    cb = fig.colorbar(im, ax=ax, fraction=0.046)
    cb.set_label("share of the true class's rows (each row sums to 1)", fontsize=7)
    ax.set_xticks(range(len(labels)), [str(lab) for lab in labels], rotation=45, fontsize=7)
    ax.set_yticks(range(len(labels)), [str(lab) for lab in labels], fontsize=7)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class (cells: number of rows)")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def bar_chart(path: Path, categories: Sequence[str], series: dict[str, Sequence[float]],
              errors: dict[str, Sequence[float]] | None = None, title: str = "", ylabel: str = "",
              ylim: tuple[float, float] | None = None) -> None:
    """Grouped bars: one group per category, one bar per series (with optional error bars)."""
    fig = _new_figure(max(5.0, 0.9 * len(categories) + 2), 3.8)
    ax = fig.add_subplot(111)
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(categories))
    for k, (name, vals) in enumerate(series.items()):
        err = None if errors is None else errors.get(name)
        ax.bar(x + (k - (n - 1) / 2) * width, np.asarray(vals, float), width, yerr=err, capsize=2, label=name)
    ax.set_xticks(x, [str(c) for c in categories], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7)
    _save(fig, path)


def line_plot(path: Path, x: Sequence[float], series: dict[str, Sequence[float]], title: str = "",
              xlabel: str = "", ylabel: str = "") -> None:
    fig = _new_figure()
    ax = fig.add_subplot(111)
    for name, vals in series.items():
        ax.plot(list(x), list(vals), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


# --------------------------------------------------------------------------------------------- report
class Report:
    """Markdown sections and a results dict, written together."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self.results: dict[str, Any] = {}

    def add(self, markdown: str) -> None:
        self.parts.append(markdown.rstrip() + "\n")

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.parts)

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md, js = out_dir / "report.md", out_dir / "results.json"
        atomic_write_json(js, self.results)
        atomic_write_text(md, self.markdown())
        return md, js
