"""How the steps run an importance pass over a SampleSet: per sample by default.

The importance batch size is part of what importances mean (DESIGN.md): lethe's default is 1, i.e.
one term per sample, computed in vectorised groups (`compute_importances(per_sample=True)`). At
batch size 128, Fashion-MNIST's mixed-class batches cancel in the batch mean while a one-class
forget batch does not, and dampening then hits parameters every class needs (measured: class 7
forgotten at 30 points of retained accuracy, against 0 at batch size 1). Any other batch size
gives the papers' batch-mean semantics, for comparison and for the benchmarks.
"""

from __future__ import annotations

from functools import partial

from torch import nn
from tqdm.auto import tqdm

from lethe.data import SampleSet
from lethe.unlearning import DEFAULT_METHOD, Importances, compute_importances, get_method
from lethe.unlearning.importances import per_sample_group_size

PER_SAMPLE = 1
DEFAULT_IMPORTANCE_BATCH_SIZE = PER_SAMPLE


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
    # Per sample, the batches only group the work: as many samples as the device's memory holds.
    group = per_sample_group_size(model, (samples.in_channels, *samples.image_size), device=device) \
        if per_sample else int(batch_size)
    batches = samples.batches(group, with_labels=get_method(method).needs_labels)
    bar = partial(tqdm, desc=f"{method} importances", unit="batch", leave=False) if progress else None
    return compute_importances(model, batches, method=method, device=device, progress=bar,
                               per_sample=per_sample, batch_size=None if per_sample else int(batch_size))
