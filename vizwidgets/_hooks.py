"""The only place in vizwidgets that registers hooks or flips a model's mode.

Every helper here is a context manager that undoes what it did in ``finally``, so a model
leaves a ``with`` block exactly as it entered it, whether the block returned or raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from difflib import get_close_matches
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = [
    "get_module",
    "forward_hooks",
    "capture_outputs",
    "eval_mode",
    "frozen_parameters",
    "swap_modules",
    "output_shape",
]

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


def get_module(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule called ``name`` (as in ``model.named_modules()``).

    Raises ``TypeError`` if ``name`` is not a string and ``ValueError`` naming the closest
    layer names if there is no such layer.
    """
    if not isinstance(name, str):
        raise TypeError(f"layer must be a layer name (str), got {type(name).__name__}")
    try:  # a walk down the dotted path: the common case, without listing every module
        return model.get_submodule(name)
    except AttributeError:
        pass
    modules = dict(model.named_modules())
    if name not in modules:
        close = get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"layer {name!r} is not in this model.{hint} "
            "vizwidgets.list_layers(model) lists the layers to choose from."
        )
    return modules[name]


@contextmanager
def forward_hooks(model: nn.Module, hooks: Mapping[str, ForwardHook]) -> Iterator[None]:
    """Register ``hooks[name]`` as a forward hook on each named layer for the block's duration.

    All names are checked before any hook is registered; all hooks are removed on exit.
    """
    modules = {name: get_module(model, name) for name in hooks}
    handles: list[RemovableHandle] = []
    try:
        for name, hook in hooks.items():
            handles.append(modules[name].register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Collect the output of each named layer during the block's forward passes.

    Yields a dict that is filled as the model runs: ``outputs[name]`` is the layer's output from
    the most recent forward pass (the tensor itself, still in the autograd graph).
    """
    outputs: dict[str, Any] = {}

    def make_hook(name: str) -> ForwardHook:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            outputs[name] = output

        return hook

    with forward_hooks(model, {name: make_hook(name) for name in names}):
        yield outputs


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, then restore each one's own ``training`` flag."""
    flags = {module: module.training for module in model.modules()}
    try:
        model.eval()
        yield model
    finally:
        for module, training in flags.items():
            module.training = training


def output_shape(output: Any) -> tuple[int, ...] | None:
    """The shape of a layer's output without the batch dimension, or None if not a tensor."""
    if isinstance(output, Tensor):
        return tuple(output.shape[1:])
    return None


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Set ``requires_grad=False`` on every parameter, then restore each one's own flag.

    Methods differentiate with respect to the input or a layer's output only; letting the
    weights keep ``requires_grad`` would make every backward pass compute their gradients too.
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@contextmanager
def swap_modules(model: nn.Module, replacements: Mapping[str, nn.Module]) -> Iterator[None]:
    """Put ``replacements[name]`` in place of each named submodule, and put the originals back.

    Used to change how a layer computes its backward pass (guided backpropagation, LRP's rules
    and canonizers) without touching the original module objects: they, and their flags, come
    back exactly as they were. Each name is found by following its dotted path, so swapping a
    hundred layers per call stays cheap. All names are checked before anything changes.
    """
    targets: list[tuple[nn.Module, str, nn.Module]] = []
    for name, new in replacements.items():
        if not isinstance(new, nn.Module):
            raise TypeError(f"the replacement for {name!r} must be an nn.Module, got {type(new).__name__}")
        if not name:
            raise ValueError("the model itself cannot be swapped; name a submodule")
        parent: nn.Module | None = model
        *path, attribute = name.split(".")
        for part in path:
            parent = parent._modules.get(part) if parent is not None else None
        if parent is None or parent._modules.get(attribute) is None:
            get_module(model, name)  # raises the error that names close matches
        assert parent is not None
        targets.append((parent, attribute, new))
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for parent, attribute, new in targets:
            old = parent._modules[attribute]
            assert old is not None
            swapped.append((parent, attribute, old))
            parent._modules[attribute] = new
        yield
    finally:
        for parent, attribute, old in reversed(swapped):
            parent._modules[attribute] = old
