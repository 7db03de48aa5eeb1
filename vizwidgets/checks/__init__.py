"""Exercise graders for the course notebooks.

Each ``check_...`` function takes what the learner wrote (usually a function), computes the
right answer itself on a few test inputs, and compares:

- right: it prints one line that starts with ``"Correct!"`` and returns ``None``;
- wrong: it raises ``AssertionError`` with a message for the learner that says which test
  input failed, what was expected, what their code gave, and a hint.

An exercise that has not been started still raises the ``NotImplementedError`` of its
placeholder, unchanged. Any other exception from the learner's code becomes an
``AssertionError`` that names the test input it happened on (the original is chained).

Graders never change their argument, and they check that the learner's function did not
change its inputs either.

In a notebook, a grader's failure shows the learner only what helps: ``AssertionError:`` and
the message, line for line, and, where the learner's own code raised, the frames of that code
alone (two lines each). The graders' frames, which hold the reference answers, are never
printed, nor are the frames of torch or any other library the learner's code called into:
every exception leaving a ``check_...`` function carries an IPython ``_render_traceback_``
that keeps only the learner's frames.

Each message says where the result first differs (the index, and the right and the learner's
values there, with how many values differ) and gives a hint for the most likely mistake: the
graders know the classic wrong answers of each exercise and try them all on every test input.
Hints come in two levels: a failure ends with ``For more help, run check_x(fn, hint=2)``, and
every grader accepts the keyword ``hint=2`` to add a second, more concrete hint.

The package is laid out by notebook: :mod:`~vizwidgets.checks._harness` (calling the learner's
code, comparing, feedback) and :mod:`~vizwidgets.checks._nets` (small fixed networks) are
shared; then one module per notebook group: ``welcome`` (00), ``saliency`` (01), ``guided``
(02), ``cam`` (03), ``integrated`` (04), ``lrp`` (05), ``style`` (06 and 08), ``fooling`` (07),
``evaluation`` (09) and ``shortcuts`` (10). Every grader is importable from ``vizwidgets.checks``.

>>> import torch
>>> from vizwidgets.checks import check_softmax
>>> check_softmax(lambda logits: torch.softmax(logits, dim=-1))  # doctest: +ELLIPSIS
Correct! ...
"""

from __future__ import annotations

from vizwidgets.checks.cam import check_cam, check_grad_cam
from vizwidgets.checks.evaluation import check_curve_area, check_pointing_hit
from vizwidgets.checks.fooling import check_fgsm_step, check_targeted_attack
from vizwidgets.checks.guided import check_guided_relu_function, check_rectifier_rules
from vizwidgets.checks.integrated import check_completeness_gap, check_riemann_ig
from vizwidgets.checks.lrp import check_lrp_epsilon
from vizwidgets.checks.saliency import check_input_gradient, check_saliency_map, check_smoothgrad
from vizwidgets.checks.shortcuts import check_relevance_mass, check_train_one_epoch
from vizwidgets.checks.style import check_gradient_ascent, check_gram_matrix, check_style_loss, check_total_variation
from vizwidgets.checks.welcome import check_softmax, check_top_k

__all__ = [
    "check_softmax",
    "check_top_k",
    "check_input_gradient",
    "check_saliency_map",
    "check_smoothgrad",
    "check_rectifier_rules",
    "check_guided_relu_function",
    "check_cam",
    "check_grad_cam",
    "check_riemann_ig",
    "check_completeness_gap",
    "check_lrp_epsilon",
    "check_total_variation",
    "check_gradient_ascent",
    "check_fgsm_step",
    "check_targeted_attack",
    "check_gram_matrix",
    "check_style_loss",
    "check_curve_area",
    "check_pointing_hit",
    "check_train_one_epoch",
    "check_relevance_mass",
]
