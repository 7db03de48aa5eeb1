"""Images made by optimisation: activation maximisation, fooling images, style transfer and
feature inversion.

Every loop works in pixel space ([0, 1], clamped), shows a progress bar (``progress=False``
hides it), is reproducible from a seed, stops cleanly on an interrupt (the result so far is
returned and the model is left as it was), and runs on the model's device.
"""

from vizwidgets.synthesis._common import PixelModel, pixel_model, to_pixels
from vizwidgets.synthesis.fooling import AttackResult, fgsm, fool, fooling_image, pgd
from vizwidgets.synthesis.maximisation import (
    Channel,
    ClassLogit,
    Neuron,
    Objective,
    Visualization,
    maximize,
)
from vizwidgets.synthesis.style import (
    STYLE_PRESETS,
    InversionResult,
    StylePreset,
    StyleResult,
    content_loss,
    gram_matrix,
    invert_features,
    style_loss,
    style_transfer,
)

__all__ = [
    "STYLE_PRESETS",
    "AttackResult",
    "Channel",
    "ClassLogit",
    "InversionResult",
    "Neuron",
    "Objective",
    "PixelModel",
    "StylePreset",
    "StyleResult",
    "Visualization",
    "content_loss",
    "fgsm",
    "fool",
    "fooling_image",
    "gram_matrix",
    "invert_features",
    "maximize",
    "pgd",
    "pixel_model",
    "style_loss",
    "style_transfer",
    "to_pixels",
]
