"""Images made by optimisation: activation maximisation, fooling images, style transfer.

Every loop works in pixel space ([0, 1], clamped), shows a progress bar, is reproducible from
a seed, stops cleanly on an interrupt, and runs on the model's device.
"""

from vizwidgets.synthesis._common import PixelModel, pixel_model, to_pixels
from vizwidgets.synthesis.maximisation import (
    Channel,
    ClassLogit,
    Neuron,
    Objective,
    Visualization,
    maximize,
)

__all__ = [
    "Channel",
    "ClassLogit",
    "Neuron",
    "Objective",
    "PixelModel",
    "Visualization",
    "maximize",
    "pixel_model",
    "to_pixels",
]
