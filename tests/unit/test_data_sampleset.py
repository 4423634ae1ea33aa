"""SampleSet: stable ids, batching, lookups, subsets, fingerprints."""

from __future__ import annotations

import pytest
import torch

from lethe.data import Normalization, SampleSet, concat, load_dataset
from lethe.errors import DataError, UnknownSamplesError


def tiny_set(n: int = 10, channels: int = 1, labels: bool = True) -> SampleSet:
    generator = torch.Generator().manual_seed(0)
    return SampleSet(
        name="tiny", split="train", ids=[f"tiny/train/{i}" for i in range(n)],
        inputs=torch.randint(0, 256, (n, channels, 4, 4), dtype=torch.uint8, generator=generator),
        labels=torch.arange(n) % 3 if labels else None, num_classes=3,
        normalization=Normalization.uniform(channels, 0.5, 0.25),
    )


def test_ids_stable_across_two_loads(digits_train: SampleSet) -> None:
    again = load_dataset("digits", "train")
    assert again.ids == digits_train.ids
    assert torch.equal(again.inputs, digits_train.inputs) and torch.equal(again.labels, digits_train.labels)
    assert again.fingerprint() == digits_train.fingerprint()
    assert digits_train.ids[17] == "digits/train/17"


def test_digits_splits_are_disjoint_and_complete(digits_train: SampleSet, digits_test: SampleSet) -> None:
    from sklearn.datasets import load_digits

    assert len(digits_train) + len(digits_test) == len(load_digits().target)
    assert digits_train.inputs.dtype == torch.uint8 and digits_train.inputs.shape[1:] == (1, 8, 8)
    assert digits_train.in_channels == 1 and digits_train.image_size == (8, 8)
    assert set(digits_test.ids).isdisjoint(digits_train.ids)
    assert digits_train.fingerprint() != digits_test.fingerprint()
    # every class is present in both splits
    assert set(digits_train.labels.tolist()) == set(digits_test.labels.tolist()) == set(range(10))


def test_batches_normalise_per_batch_and_report_size() -> None:
    samples = tiny_set(10)
    batches = samples.batches(4)
    assert len(batches) == 3 and batches.batch_size == 4
    xs, ys = zip(*batches, strict=True)
    assert [len(x) for x in xs] == [4, 4, 2]
    x = torch.cat(xs)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, (samples.inputs.float() / 255 - 0.5) / 0.25)
    assert torch.equal(torch.cat(ys), samples.labels)
    assert len(samples.batches(4, drop_last=True)) == 2
    only_x = list(samples.batches(4, with_labels=False))
    assert all(isinstance(b, torch.Tensor) for b in only_x)


def test_shuffled_batches_are_a_seeded_permutation() -> None:
    samples = tiny_set(10)
    first = torch.cat([y for _, y in samples.batches(3, shuffle=True, seed=1)])
    again = torch.cat([y for _, y in samples.batches(3, shuffle=True, seed=1)])
    other = [torch.cat([y for _, y in samples.batches(3, shuffle=True, seed=s)]) for s in range(2, 6)]
    assert torch.equal(first, again)
    assert sorted(first.tolist()) == sorted(samples.labels.tolist())
    assert any(not torch.equal(first, o) for o in other)


def test_batches_without_labels_refused_when_asked_for_labels() -> None:
    with pytest.raises(DataError, match="no labels"):
        tiny_set(labels=False).batches(2)


def test_indices_of_and_unknown_ids_named() -> None:
    samples = tiny_set(10)
    assert samples.indices_of(["tiny/train/7", "tiny/train/2"]).tolist() == [7, 2]
    wanted = ["tiny/train/1"] + [f"nope/{i}" for i in range(8)]
    with pytest.raises(UnknownSamplesError, match=r"8 of 9 sample id\(s\) not in tiny/train \(the ids given "
                       r"at position 2, 3, 4, 5, 6 and 3 more\)") as info:
        samples.indices_of(wanted)
    assert "tiny/train/1" not in str(info.value) and "nope" not in str(info.value)  # positions, not ids


def test_subset_keeps_ids_with_their_inputs() -> None:
    samples = tiny_set(10)
    part = samples.subset(torch.tensor([8, 3]))
    assert part.ids == ["tiny/train/8", "tiny/train/3"]
    assert torch.equal(part.inputs[0], samples.inputs[8]) and part.labels.tolist() == [8 % 3, 0]
    masked = samples.subset(samples.labels == 1)
    assert masked.ids == ["tiny/train/1", "tiny/train/4", "tiny/train/7"]
    assert masked.fingerprint() != samples.fingerprint()


def test_fingerprint_sees_every_part() -> None:
    base = tiny_set(6)
    changed_pixel = tiny_set(6)
    changed_pixel.inputs[0, 0, 0, 0] ^= 1
    changed_label = tiny_set(6)
    changed_label.labels[0] = 2
    renamed = SampleSet(name="tiny", split="train", ids=[f"x/{i}" for i in range(6)], inputs=base.inputs,
                        labels=base.labels, num_classes=3, normalization=base.normalization)
    prints = {s.fingerprint() for s in (base, changed_pixel, changed_label, renamed)}
    assert len(prints) == 4 and tiny_set(6).fingerprint() == base.fingerprint()


@pytest.mark.parametrize("problem", ["dtype", "count", "duplicate", "label", "channels"])
def test_malformed_sets_refused(problem: str) -> None:
    ids = [f"s/{i}" for i in range(4)]
    inputs = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    labels = torch.zeros(4, dtype=torch.int64)
    norm = Normalization.uniform(1)
    if problem == "dtype":
        inputs = inputs.float()
    elif problem == "count":
        ids = ids[:3]
    elif problem == "duplicate":
        ids[3] = ids[0]
    elif problem == "label":
        labels[2] = 5
    else:
        norm = Normalization.uniform(3)
    with pytest.raises(DataError):
        SampleSet(name="s", split="train", ids=ids, inputs=inputs, labels=labels, num_classes=2,
                  normalization=norm)


def test_describe_counts_classes(digits_test: SampleSet) -> None:
    summary = digits_test.describe()
    assert "metadata" not in summary  # `lethe data info` prints what it printed before for sets without
    assert summary["size"] == len(digits_test) == sum(summary["class_counts"])
    assert summary["fingerprint"] == digits_test.fingerprint()
    assert Normalization.from_dict(summary["normalization"]) == digits_test.normalization


# Per-sample metadata

SOURCES = ["clinic-a", "clinic-b", "clinic-a", "web", "clinic-b", "clinic-a"]


def with_sources(n: int = 6) -> SampleSet:
    return tiny_set(n).with_metadata({"source": SOURCES[:n], "year": [str(2020 + i % 2) for i in range(n)]})


def test_metadata_selects_ids_and_leaves_the_fingerprint_alone() -> None:
    samples = with_sources()
    assert samples.ids_where("source", "clinic-a") == ["tiny/train/0", "tiny/train/2", "tiny/train/5"]
    assert samples.ids_where("source", "nowhere") == []
    assert samples.metadata_values("source") == ["clinic-a", "clinic-b", "web"]
    assert samples.fingerprint() == tiny_set(6).fingerprint()  # models record it: metadata stays out
    assert samples.describe()["metadata"] == {"source": 3, "year": 2}
    with pytest.raises(DataError, match="no metadata column 'site' .*its columns: source, year"):
        samples.ids_where("site", "web")
    with pytest.raises(DataError, match="its columns: none"):
        tiny_set(6).ids_where("source", "web")


def test_metadata_travels_through_subset_and_concat() -> None:
    samples = with_sources()
    part = samples.subset(torch.tensor([3, 0]))
    assert part.metadata == {"source": ["web", "clinic-a"], "year": ["2021", "2020"]}
    assert samples.subset(samples.labels == 1).metadata["source"] == ["clinic-b", "clinic-b"]
    joined = concat([samples.subset(torch.arange(0, 2)), samples.subset(torch.arange(2, 6))])
    assert joined.metadata == samples.metadata and joined.ids == samples.ids
    with pytest.raises(DataError, match="different metadata columns"):
        concat([samples.subset(torch.arange(0, 2)), tiny_set(6).subset(torch.arange(2, 6))])


@pytest.mark.parametrize(("columns", "problem"), [
    ({"source": SOURCES[:5]}, "5 values for 6 samples"),
    ({"source": "clinic-a"}, "not one string"),
    ({"source": [1, 2, 3, 4, 5, 6]}, "not strings"),
    ({"2nd": SOURCES}, "letters, digits and '_'"),
    ({"so urce": SOURCES}, "letters, digits and '_'"),
])
def test_malformed_metadata_refused(columns: dict, problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        tiny_set(6).with_metadata(columns)
