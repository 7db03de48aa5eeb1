"""Layer-wise relevance propagation (LRP), in zennit's four ideas with typed parts.

- a **rule** (:mod:`.rules`) says how one layer hands relevance down: :class:`LRP0`,
  :class:`Epsilon`, :class:`Gamma`, :class:`AlphaBeta`, :class:`ZBox`, and :class:`Norm` for
  average pooling and residual sums;
- a **composite** (:mod:`.composites`) says which rule goes where: :class:`Composite`, the
  presets in :data:`COMPOSITES`, built by :func:`make_composite`;
- a **canonizer** (:mod:`.canonizers`) rewrites the model for the duration of a call and
  undoes it exactly: :class:`BatchNormFolding`, :class:`PaddingMerging`,
  :class:`ResNetCanonizer`;
- the **attributor** (:mod:`.core`) says what is computed: :class:`LRP` /
  :func:`lrp` give the relevance of each input value for a class score;
  :func:`relevance_propagation` is the ``with`` block in which a model's gradient is relevance.

References: Bach, Binder, Montavon, Klauschen, Müller & Samek 2015, PLoS ONE 10(7): e0130140;
Montavon, Binder, Lapuschkin, Samek & Müller 2019, "Layer-Wise Relevance Propagation: An
Overview", Explainable AI, LNCS 11700.
"""

from vizwidgets.attribution.lrp.canonizers import (
    DEFAULT_CANONIZERS,
    BatchNormFolding,
    Canonizer,
    PaddingMerging,
    ResNetCanonizer,
    canonized,
    fold_batchnorm,
    fold_batchnorms,
    replaced_modules,
)
from vizwidgets.attribution.lrp.composites import COMPOSITES, Composite, make_composite
from vizwidgets.attribution.lrp.core import (
    LRP,
    LRPOutput,
    UnsupportedLayerError,
    layer_relevance,
    lrp,
    relevance_propagation,
)
from vizwidgets.attribution.lrp.layers import (
    AffineLayer,
    AffineModule,
    ConvLayer,
    DenseLayer,
    ResidualBlock,
    affine_layer,
)
from vizwidgets.attribution.lrp.rules import LRP0, AlphaBeta, Epsilon, Gamma, Norm, Rule, ZBox

__all__ = [
    "LRP",
    "LRPOutput",
    "lrp",
    "relevance_propagation",
    "layer_relevance",
    "UnsupportedLayerError",
    "Rule",
    "LRP0",
    "Epsilon",
    "Gamma",
    "AlphaBeta",
    "ZBox",
    "Norm",
    "Composite",
    "COMPOSITES",
    "make_composite",
    "Canonizer",
    "BatchNormFolding",
    "PaddingMerging",
    "ResNetCanonizer",
    "DEFAULT_CANONIZERS",
    "canonized",
    "replaced_modules",
    "fold_batchnorm",
    "fold_batchnorms",
    "AffineLayer",
    "DenseLayer",
    "ConvLayer",
    "AffineModule",
    "ResidualBlock",
    "affine_layer",
]
