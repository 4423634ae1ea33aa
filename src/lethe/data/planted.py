"""Memorised subjects planted into a training set: what a model memorises, and so what unlearning must remove.

Random samples of a well-generalising model are not memorised (a model that never saw them predicts them
as well), so they cannot show whether an unlearning method removes memorisation. Two kinds of subject are:

- `wrong_label`: a subject's images carry a wrong label (label memorisation). The image itself is
  ordinary, so a label-free importance (LFSSD's ||f(x)||²) may not single it out.
- `stamped`: a subject's images carry a small pattern of its own and a label of its own (input
  memorisation, as a person's distinctive photos would). The model learns "pattern → label"; held-out
  test images stamped with the subject's pattern measure it (`stamped_rate`).
- `stamped_true_class`: a stamped subject whose images all belong to one class and keep it as their
  label: a trait shared by a person's images that agrees with their content (the model may still learn
  "pattern → label"; held-out images of other classes stamped with the pattern show it). Nothing in the
  label gives it away, so only a test that compares the person with models that never met them can.

Everything is drawn from one seed; sample ids stay the data set's own (a planted sample is the same
sample with another label or a stamp), so a subject map of the planted set names ordinary ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from lethe.data.sampleset import SampleSet
from lethe.errors import DataError

WRONG_LABEL = "wrong_label"
STAMPED = "stamped"
STAMPED_TRUE_CLASS = "stamped_true_class"
KINDS = (WRONG_LABEL, STAMPED, STAMPED_TRUE_CLASS)
#: The kinds whose images carry a pattern (and held-out stamped images).
STAMPED_KINDS = (STAMPED, STAMPED_TRUE_CLASS)
#: Subject names: a prefix per kind and a number (`planted-wrong-label-03`, `planted-stamp-00`).
SUBJECT_PREFIX = {WRONG_LABEL: "planted-wrong-label", STAMPED: "planted-stamp",
                  STAMPED_TRUE_CLASS: "planted-stamp-true"}
#: The held-out stamped images' ids: the test image's id and the subject whose pattern it carries.
STAMP_ID_SEPARATOR = "+stamp:"


@dataclass(frozen=True)
class PlantedSubjects:
    """A training set with planted subjects (`plant_subjects`).

    `train`: the modified training split (same ids, order and size). `subjects`: subject → its sample
    ids. `kinds`: subject → `wrong_label` | `stamped`. `labels`: subject → the label its images carry
    now (a stamped subject's one label; a wrong-label subject's labels differ per image, see `train`).
    `stamped_test`: held-out test images (never of the subject's label) stamped with a stamped subject's
    pattern and labelled with that subject's label; `stamped_test_subjects`: subject → their ids.
    """

    train: SampleSet
    subjects: dict[str, list[str]]
    kinds: dict[str, str]
    labels: dict[str, int]
    stamped_test: SampleSet | None
    stamped_test_subjects: dict[str, list[str]]
    patterns: dict[str, tuple[int, int, torch.Tensor]]  # stamped subject → (row, col, uint8 [C, p, p])

    def of_kinds(self, kinds: tuple[str, ...]) -> list[str]:
        """The subjects of any of `kinds`, in order."""
        return [s for s, k in self.kinds.items() if k in kinds]

    def of_kind(self, kind: str) -> list[str]:
        """The subjects of one kind, in order."""
        return [s for s, k in self.kinds.items() if k == kind]

    def ids_of_kind(self, kind: str) -> list[str]:
        return [i for s in self.of_kind(kind) for i in self.subjects[s]]


def default_pattern_size(samples: SampleSet) -> int:
    """A pattern about a seventh of the image's side (2 px on 8×8 digits, 4 px on 28×28)."""
    return max(2, round(min(samples.image_size) / 7))


def stamp(inputs: torch.Tensor, row: int, col: int, pattern: torch.Tensor) -> torch.Tensor:
    """A copy of uint8 images [N, C, H, W] with `pattern` [C, p, p] written at (row, col)."""
    out = inputs.clone()
    p = pattern.shape[-1]
    out[:, :, row:row + p, col:col + p] = pattern
    return out


def plant_subjects(train: SampleSet, test: SampleSet | None = None, *, wrong_label: int = 30,
                   stamped: int = 0, per_subject: int = 10, stamped_test_per_subject: int = 20,
                   pattern_size: int | None = None, seed: int = 0,
                   stamped_true_class: int = 0) -> PlantedSubjects:
    """Plant `wrong_label` + `stamped` + `stamped_true_class` subjects of `per_subject` distinct training
    images each.

    A wrong-label subject's images each get a label other than their own (uniform over the others). A
    stamped subject gets a random binary pattern of `pattern_size`² pixels at a random place and one
    random label; its images carry both. A stamped-true-class subject gets a pattern too, but its images
    are drawn from one random class and keep that class as their label. With `test`,
    `stamped_test_per_subject` test images whose label is not the subject's are stamped with its pattern
    (for the stamped-image rate). Deterministic in `seed` (the same seed plants the same wrong-label and
    stamped subjects whatever `stamped_true_class` is)."""
    if train.labels is None:
        raise DataError(f"{train.name}/{train.split} has no labels: nothing to plant")
    if min(wrong_label, stamped, stamped_true_class) < 0 or per_subject < 1:
        raise DataError("planted subjects need a non-negative count of each kind and at least one image each")
    needed = (wrong_label + stamped) * per_subject
    if needed + stamped_true_class * per_subject > len(train):
        raise DataError(f"{needed + stamped_true_class * per_subject} planted images asked of {len(train)} "
                        "training images")
    if train.num_classes < 2:
        raise DataError("a wrong label needs at least two classes")
    size = pattern_size or default_pattern_size(train)
    height, width = train.image_size
    if not 1 <= size <= min(height, width):
        raise DataError(f"a {size}-pixel pattern does not fit {height}×{width} images")
    generator = torch.Generator().manual_seed(int(seed))
    chosen = torch.randperm(len(train), generator=generator)[:needed].view(-1, per_subject)
    inputs, labels = train.inputs.clone(), train.labels.clone()
    subjects: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    own: dict[str, int] = {}
    patterns: dict[str, tuple[int, int, torch.Tensor]] = {}
    for number in range(wrong_label):
        rows = chosen[number]
        shift = torch.randint(1, train.num_classes, (per_subject,), generator=generator)
        labels[rows] = (labels[rows] + shift) % train.num_classes
        name = f"{SUBJECT_PREFIX[WRONG_LABEL]}-{number:02d}"
        subjects[name], kinds[name] = [train.ids[i] for i in rows.tolist()], WRONG_LABEL
        own[name] = -1  # per image: read train.labels

    def plant_pattern(rows: torch.Tensor, kind: str, number: int, label: int | None) -> None:
        pattern = (torch.rand(train.in_channels, size, size, generator=generator) < 0.5).to(torch.uint8) * 255
        row = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        col = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        if label is None:
            label = int(torch.randint(0, train.num_classes, (1,), generator=generator))
        inputs[rows] = stamp(inputs[rows], row, col, pattern)
        labels[rows] = label
        name = f"{SUBJECT_PREFIX[kind]}-{number:02d}"
        subjects[name], kinds[name], own[name] = [train.ids[i] for i in rows.tolist()], kind, label
        patterns[name] = (row, col, pattern)

    for number in range(stamped):
        plant_pattern(chosen[wrong_label + number], STAMPED, number, None)
    taken = torch.zeros(len(train), dtype=torch.bool)
    taken[chosen.flatten()] = True
    for number in range(stamped_true_class):
        rows = _one_class_rows(train.labels, taken, per_subject, generator)
        taken[rows] = True
        plant_pattern(rows, STAMPED_TRUE_CLASS, number, int(train.labels[rows[0]]))
    planted = SampleSet(name=train.name, split=train.split, ids=train.ids, inputs=inputs, labels=labels,
                        num_classes=train.num_classes, normalization=train.normalization,
                        classes=train.classes)
    stamped_test, stamped_ids = _stamped_test(test, patterns, own, stamped_test_per_subject, generator)
    return PlantedSubjects(planted, subjects, kinds, own, stamped_test, stamped_ids, patterns)


def _one_class_rows(labels: torch.Tensor, taken: torch.Tensor, count: int,
                    generator: torch.Generator) -> torch.Tensor:
    """`count` untaken rows of one random class that has that many left."""
    free = [c for c in range(int(labels.max()) + 1) if int(((labels == c) & ~taken).sum()) >= count]
    if not free:
        raise DataError(f"no class has {count} images left for a stamped-true-class subject")
    label = free[int(torch.randint(0, len(free), (1,), generator=generator))]
    candidates = ((labels == label) & ~taken).nonzero().flatten()
    return candidates[torch.randperm(len(candidates), generator=generator)[:count]]


def _stamped_test(test: SampleSet | None, patterns: Mapping[str, tuple[int, int, torch.Tensor]],
                  labels: Mapping[str, int], per_subject: int, generator: torch.Generator
                  ) -> tuple[SampleSet | None, dict[str, list[str]]]:
    if test is None or not patterns or per_subject < 1:
        return None, {}
    if test.labels is None:
        raise DataError(f"{test.name}/{test.split} has no labels: the stamped images need their classes")
    parts_inputs, parts_ids, by_subject = [], [], {}
    for name, (row, col, pattern) in patterns.items():
        # Images of another class only: predicting the subject's label on them is the pattern's doing.
        candidates = (test.labels != labels[name]).nonzero().flatten()
        picked = candidates[torch.randperm(len(candidates), generator=generator)[:per_subject]]
        ids = [f"{test.ids[i]}{STAMP_ID_SEPARATOR}{name}" for i in picked.tolist()]
        parts_inputs.append(stamp(test.inputs[picked], row, col, pattern))
        parts_ids.extend(ids)
        by_subject[name] = ids
    count = [len(by_subject[name]) for name in patterns]
    stamped_labels = torch.cat([torch.full((n,), labels[name], dtype=torch.int64)
                                for name, n in zip(patterns, count, strict=True)])
    samples = SampleSet(name=test.name, split=test.split, ids=parts_ids, inputs=torch.cat(parts_inputs),
                        labels=stamped_labels, num_classes=test.num_classes, normalization=test.normalization,
                        classes=test.classes)
    return samples, by_subject


def agreement(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of predictions equal to the planted labels (the memorised agreement, or on stamped
    held-out images the stamped-image rate)."""
    if len(labels) == 0:
        return float("nan")
    return float((predictions == labels).double().mean())
