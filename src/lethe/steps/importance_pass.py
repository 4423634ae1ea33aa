"""How the steps run an importance pass over a SampleSet: per sample by default.

The importance batch size is part of what importances mean (DESIGN.md): lethe's default is 1, i.e.
one term per sample, computed in vectorised groups (`compute_importances(per_sample=True)`). At
batch size 128, Fashion-MNIST's mixed-class batches cancel in the batch mean while a one-class
forget batch does not, and dampening then hits parameters every class needs (measured: class 7
forgotten at 30 points of retained accuracy, against 0 at batch size 1). Any other batch size
gives the papers' batch-mean semantics, for comparison and for the benchmarks.
"""

from __future__ import annotations

from torch import nn

from lethe.data import SampleSet
from lethe.unlearning import DEFAULT_METHOD, Importances, compute_importances, get_method

PER_SAMPLE = 1
DEFAULT_IMPORTANCE_BATCH_SIZE = PER_SAMPLE
#: Samples whose per-sample gradients are computed together (memory, not semantics).
PER_SAMPLE_GROUP = 256


def importances_of(
    model: nn.Module,
    samples: SampleSet,
    *,
    batch_size: int = DEFAULT_IMPORTANCE_BATCH_SIZE,
    method: str = DEFAULT_METHOD,
    device: str | None = None,
    progress: bool = True,
) -> Importances:
    """Importances of `model` over `samples` at importance batch size `batch_size` with `method`."""
    per_sample = int(batch_size) == PER_SAMPLE
    batches = samples.batches(PER_SAMPLE_GROUP if per_sample else int(batch_size),
                              with_labels=get_method(method).needs_labels)
    return compute_importances(model, batches, method=method, device=device, progress=progress,
                               per_sample=per_sample, batch_size=None if per_sample else int(batch_size))
