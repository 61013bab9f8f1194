"""Video features from real media files: ``deepqoe extract``.

* :mod:`.decode`: PyAV decoding with threaded decoders, frame sampling and GOP skipping;
* extractors (one interface, :mod:`.base`): ``cnn-frames``, ``c3d``, ``siti``, ``stream``,
  ``full-reference`` (PSNR / SSIM / VMAF), ``niqe``;
* :mod:`.pipeline`: inputs, the content-hash cache (:mod:`.cache`), in-process or Dask execution,
  and the output tables;
* :mod:`.cli`: the ``extract`` and ``convert-c3d-weights`` sub-commands.
"""

from deepqoe.features.video.base import (DEFAULT_EXTRACTORS, EXTRACTORS, Extractor, Features, make_extractor)

__all__ = ["DEFAULT_EXTRACTORS", "EXTRACTORS", "Extractor", "Features", "make_extractor"]
