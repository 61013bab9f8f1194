"""Models shipped with deepqoe, one folder each (``model.safetensors`` + ``model.json`` +
``MODEL_CARD.md``), loaded by name: ``deepqoe.persistence.load_model("upec-qoe-lab")``.

``deepqoe models`` lists them; ``scripts/build_pretrained.py`` rebuilds them from the public data.
:mod:`deepqoe.sessions.frame` defines the input of the streaming-session model (which session
features and per-second series it reads, and how they are grouped for explanations).
"""

from pathlib import Path

PRETRAINED_DIR = Path(__file__).parent


def shipped_models() -> list[str]:
    """Names of the shipped models (folders with a ``model.json``)."""
    return sorted(d.name for d in PRETRAINED_DIR.iterdir() if (d / "model.json").is_file())
