"""`dataset.json`: the card of a shard root (format `lethe-dataset/1`), one `Record`.

A published data set's card (`lethe data publish`) states what a model must match and where the
data came from: classes, channels, image size, normalisation, the per-sample metadata columns every
split carries, and per split its size and fingerprint. Plain shard roots (`write_shards`, or a
`dataset.json` written by hand) need only `num_classes`; their older, untagged cards still read,
their unknown keys ignored as before. Cards published before metadata existed read with no columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lethe.data.card import Normalization
from lethe.errors import DataError
from lethe.storage.records import FORMAT_KEY, Record

if TYPE_CHECKING:
    from lethe.data.sampleset import SampleSet

CARD_FILE = "dataset.json"


class SplitEntry(BaseModel):
    """One split of a published set: how many samples, and `SampleSet.fingerprint()`."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=0)
    fingerprint: str


class NormalizationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: list[float]
    std: list[float]


class DatasetRecord(Record):
    FORMAT: ClassVar[str] = "lethe-dataset/1"
    WHAT: ClassVar[str] = "a lethe data set card"
    ERROR: ClassVar[type[DataError]] = DataError

    num_classes: int = Field(ge=1)
    source: str | None = None  # the data set it was published from (`digits`, `imagefolder:/data/x`)
    classes: list[str] | None = None
    in_channels: int | None = None
    image_size: list[int] | None = None
    normalization: NormalizationFields | None = None
    metadata: list[str] = Field(default_factory=list)  # per-sample columns every split carries
    splits: dict[str, SplitEntry] | None = None  # published sets only

    @classmethod
    def of(cls, samples: SampleSet, *, source: str, splits: tuple[SampleSet, ...] = ()) -> DatasetRecord:
        """The card of `samples` (a split), with the size and fingerprint of each of `splits`."""
        return cls(
            source=source, num_classes=samples.num_classes,
            classes=list(samples.classes) if samples.classes else None,
            in_channels=samples.in_channels, image_size=list(samples.image_size),
            normalization=NormalizationFields(**samples.normalization.to_dict()),
            metadata=list(samples.metadata),
            splits={s.split: SplitEntry(size=len(s), fingerprint=s.fingerprint()) for s in splits} or None,
        )

    @classmethod
    def from_plain(cls, raw: Any, *, where: str) -> DatasetRecord:
        """A plain shard root's card: tagged, or an older untagged one (unknown keys ignored)."""
        if isinstance(raw, dict) and FORMAT_KEY not in raw:
            raw = {FORMAT_KEY: cls.FORMAT, **{k: v for k, v in raw.items() if k in cls.model_fields}}
        return cls.from_fields(raw, where=where)

    def normalization_for(self, channels: int) -> Normalization:
        """The card's normalisation, or [0, 1] -> [-1, 1] for `channels` where it states none."""
        if self.normalization is None:
            return Normalization.uniform(channels)
        return Normalization.from_dict(self.normalization.model_dump())

    def recorded_fingerprint(self, split: str) -> str | None:
        entry = (self.splits or {}).get(split)
        return entry.fingerprint if entry is not None else None
