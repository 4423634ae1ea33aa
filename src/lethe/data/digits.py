"""scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): tiny, offline, for tests and demos.

Its card (classes, normalisation) is its row's, in `lethe.data.catalog`.
"""

from __future__ import annotations

import torch

from lethe.data.catalog import LoadOptions
from lethe.data.sampleset import SampleSet

#: Every fifth image (position 4, 9, 14, ...) is a test image. No random state: the split is
#: the same on every machine and every version of every library.
TEST_EVERY = 5


def load(split: str, options: LoadOptions) -> SampleSet:
    from sklearn.datasets import load_digits  # heavy import, only when asked for

    assert options.card is not None  # the row has one
    bunch = load_digits()
    # Pixel values are 0..16; scale to the full uint8 range like every other image set.
    images = torch.from_numpy(bunch.images).mul(255.0 / 16.0).round().clamp(0, 255).to(torch.uint8)
    images = images.unsqueeze(1)  # [N, 1, 8, 8]
    labels = torch.from_numpy(bunch.target).to(torch.int64)
    is_test = torch.arange(len(labels)) % TEST_EVERY == TEST_EVERY - 1
    mask = is_test if split == "test" else ~is_test
    chosen_images, chosen_labels = images[mask], labels[mask]
    return SampleSet(
        name="digits",
        split=split,
        ids=[f"digits/{split}/{i}" for i in range(len(chosen_labels))],
        inputs=chosen_images.contiguous(),
        labels=chosen_labels,
        num_classes=options.card.num_classes,
        normalization=options.card.normalization,
        classes=options.card.classes,
    )
