"""Phase 1: feature extraction, one module per modality.

Each input column of a dataset gets an *encoder* fitted on the training split only:

* :mod:`~deepqoe.features.text`: pre-trained word embeddings (GloVe 6B 50-d; MiniLM optional),
* :mod:`~deepqoe.features.tabular`: categorical vocabularies and continuous normalisers, pre-computed
  feature vectors, per-second sequences,
* :mod:`~deepqoe.features.video`: features computed from media files (``deepqoe extract``).

Encoders turn a DataFrame column into arrays; they know nothing of the network. Their fitted state is
plain JSON (no pickle), so a saved model re-encodes new data exactly as in training.
"""

from deepqoe.features.tabular import build_encoder, InputEncoder  # noqa: F401
