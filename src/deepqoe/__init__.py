"""deepqoe: multimodal deep learning for video Quality of Experience (QoE) prediction.

The package follows the three phases of the DeepQoE design:

1. feature extraction, one module per modality (:mod:`deepqoe.features`),
2. representation learning: per-input projections g_i, fusion and FC layers (:mod:`deepqoe.model`),
3. prediction: a classification / regression head, or a shallow learner on the representation
   (:mod:`deepqoe.model`, :mod:`deepqoe.shallow`).

Around them: dataset configs (:mod:`deepqoe.config`), training (:mod:`deepqoe.train`), scikit-learn
estimators (:mod:`deepqoe.estimators`), evaluation (:mod:`deepqoe.evaluation`), persistence
(:mod:`deepqoe.persistence`) and the command line (:mod:`deepqoe.cli`).
"""

__version__ = "0.1.0"

from deepqoe.errors import DeepQoEError  # noqa: E402

__all__ = ["DeepQoEError", "__version__"]


def __getattr__(name):  # lazy: importing deepqoe must not import torch
    if name in {"DeepQoEClassifier", "DeepQoERegressor", "DeepQoERepresentation"}:
        from deepqoe import estimators

        return getattr(estimators, name)
    raise AttributeError(name)
