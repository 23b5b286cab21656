"""Break every model on purpose and show that `test_learning.py` fails for it.

    .venv/bin/python tests/check_learning_breaks.py [ours ce pconv gc]

Not part of `make test` (it trains each model once per break, ~8 minutes on
2 cores). For each model it runs the learning test intact, then under each
break, and prints the hole PSNR the test measured against its bar. It exits
1 if an intact model fails or a broken one passes.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_learning  # noqa: E402
from fgi import methods  # noqa: E402
from fgi.methods import base  # noqa: E402


@contextlib.contextmanager
def patched(owner, name: str, replacement) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, replacement(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def learned_objectives() -> list[type]:
    return [methods.get(name).objective for name in methods.names() if methods.get(name).learned]


def input_detached() -> contextlib.AbstractContextManager:
    """The generator sees zeros instead of the masked image and hole."""
    def replacement(init):
        def build(self, *args, **kwargs):
            init(self, *args, **kwargs)
            forward = self.generator.forward
            self.generator.forward = lambda masked, hole, **kw: forward(torch.zeros_like(masked),
                                                                        torch.zeros_like(hole), **kw)
        return build
    return patched(base.Objective, "__init__", replacement)


def gradients_cut() -> contextlib.AbstractContextManager:
    """The generator's optimiser never steps."""
    def replacement(update):
        return lambda self, which, loss: None if which == "generator" else update(self, which, loss)
    return patched(base.Objective, "_update", replacement)


def discriminator_inverted() -> contextlib.AbstractContextManager:
    """The discriminator ascends its loss: it learns to score the fills real and the images fake."""
    def replacement(update):
        return lambda self, which, loss: update(self, which, -loss if which == "discriminator" else loss)
    return patched(base.Objective, "_update", replacement)


def loss_sign_flipped() -> contextlib.AbstractContextManager:
    """The generator ascends its loss."""
    def replacement(update):
        return lambda self, which, loss: update(self, which, -loss if which == "generator" else loss)
    return patched(base.Objective, "_update", replacement)


@contextlib.contextmanager
def hole_inverted() -> Iterator[None]:
    """Every objective trains with hole and known pixels swapped."""
    with contextlib.ExitStack() as stack:
        for cls in learned_objectives():
            stack.enter_context(patched(cls, "step", lambda step: lambda self, image, hole, fg_mask, **kw:
                                        step(self, image, 1 - hole, fg_mask, **kw)))
        yield


@contextlib.contextmanager
def composite_swapped() -> Iterator[None]:
    """Known pixels from the prediction, hole pixels from the image (caught elsewhere)."""
    with contextlib.ExitStack() as stack:
        for cls in learned_objectives():  # each method's module holds its own name for composite
            if not hasattr(sys.modules[cls.__module__], "composite"):
                continue  # LaMa's losses read the raw prediction: it never composites in training
            stack.enter_context(patched(sys.modules[cls.__module__], "composite", lambda _: lambda prediction,
                                        image, hole: prediction * (1 - hole) + image * hole))
        yield


BREAKS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "input detached": input_detached, "gradients cut": gradients_cut,
    "hole inverted": hole_inverted, "loss sign flipped": loss_sign_flipped,
    "composite swapped": composite_swapped, "discriminator inverted": discriminator_inverted,
}
MUST_FAIL = ("input detached", "gradients cut", "hole inverted", "loss sign flipped", "discriminator inverted")


def required(label: str, name: str) -> bool:
    """Every break in MUST_FAIL, but an adversary's only where the method has one (not PConv)."""
    return label in MUST_FAIL and (label != "discriminator inverted" or methods.get(name).discriminator is not None)


def verdict(name: str) -> tuple[bool, str]:
    runs = test_learning.train_fixed_batch(name)
    # Hole PSNR in dB to 2 decimals; the adversary's real − fill score to 3 (GC's is a few hundredths).
    text = "; ".join(f"{output} {run.best_late:6.3f} vs bar {run.bar:5.3f}" if output == "adversary"
                     else f"{output} {run.best_late:6.2f} vs bar {run.bar:5.2f}" for output, run in runs.items())
    leaks = max(run.leaks for run in runs.values())
    text += f"; generator shown the hole in {leaks} steps" if leaks else ""
    return all(run.passed for run in runs.values()), text


def main(models: list[str]) -> int:
    wrong = 0
    for name in models:
        passed, text = verdict(name)
        wrong += not passed
        print(f"{name:6s} intact             {'passes' if passed else 'FAILS '}  {text}", flush=True)
        for label, make_break in BREAKS.items():
            with make_break():
                passed, text = verdict(name)
            must = required(label, name)
            wrong += must and passed
            note = "" if must else "  (not required: see test_learning.py's docstring)"
            print(f"{name:6s} {label:18s} {'passes' if passed else 'fails '}  {text}{note}", flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(test_learning.STEPS)))
