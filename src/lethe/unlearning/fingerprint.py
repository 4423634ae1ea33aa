"""A model's identity: sha256 over its parameters' names, dtypes, shapes and bytes.

Hashing ResNet18's 45 MB costs about 0.1 s on a CPU (and a copy to the host from a GPU), more than
a cached request's dampening: so a fingerprint is computed once per model version and remembered.
A remembered fingerprint is reused while every parameter is the same tensor (data pointer) at the
same autograd version counter; an in-place change (`param.mul_`, `load_state_dict`, an optimizer
step), a new tensor or a device move invalidates it. A `copy.deepcopy` of a model with a known
fingerprint is recognised by comparing its parameters bit for bit with the original's (a comparison
is far cheaper than a hash). Writes through `param.data`, which bypass the version counter, are not
seen: call `invalidate_fingerprint(model)` after them.
"""

from __future__ import annotations

import hashlib
import weakref

import torch
from torch import nn

#: model -> (its parameters' state when fingerprinted, the fingerprint)
_KNOWN: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def model_fingerprint(model: nn.Module) -> str:
    """Hex sha256 of every named parameter (name, dtype, shape, raw bytes), in module order.

    Buffers (BatchNorm running statistics) are not parameters: LFSSD never touches them, and
    the importances are bound to the parameters only. Computed once per model version (see above).
    """
    known = known_fingerprint(model)
    if known is not None:
        return known
    state = parameter_state(model)
    fingerprint = _fingerprint_of_a_copy(model, state) or fingerprint_of(parameter_snapshot(model))
    remember_fingerprint(model, fingerprint, state)
    return fingerprint


def buffers_fingerprint(model: nn.Module) -> str:
    """Hex sha256 of every named buffer (BatchNorm running statistics, counters), like `fingerprint_of`.

    Kept apart from `model_fingerprint`, which keys the importances cache and the references: those
    stay valid, while a model card records this one too, so a changed `running_mean` is refused."""
    return fingerprint_of([(name, buffer.detach().to("cpu").contiguous())
                           for name, buffer in model.named_buffers()])


def parameter_state(model: nn.Module) -> tuple:
    """What identifies the parameters' current values without reading them: names, tensors, versions."""
    return tuple((name, p.device, p.dtype, tuple(p.shape), p.data_ptr(), p._version)
                 for name, p in model.named_parameters())


def known_fingerprint(model: nn.Module) -> str | None:
    """The remembered fingerprint of `model`, if its parameters have not changed since; else None."""
    entry = _KNOWN.get(model)
    return entry[1] if entry is not None and entry[0] == parameter_state(model) else None


def remember_fingerprint(model: nn.Module, fingerprint: str, state: tuple | None = None) -> None:
    """Record that `model`'s parameters, as they are now (or were in `state`), hash to `fingerprint`."""
    _KNOWN[model] = (parameter_state(model) if state is None else state, fingerprint)


def invalidate_fingerprint(model: nn.Module) -> None:
    """Drop the remembered fingerprint (a cache entry) after writes the version counter does not see."""
    _KNOWN.pop(model, None)


#: The former name (it invalidates a cached fingerprint; it has nothing to do with unlearning).
forget_fingerprint = invalidate_fingerprint


def _signature(state: tuple) -> tuple:
    return tuple((name, device, dtype, shape) for name, device, dtype, shape, _, _ in state)


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    # Bytes, not values: -0.0 == 0.0 and NaN != NaN as floats, but the hash sees the bytes.
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def _fingerprint_of_a_copy(model: nn.Module, state: tuple) -> str | None:
    """The fingerprint of a live model with a valid remembered fingerprint and bit-identical parameters."""
    signature = _signature(state)
    for other, (other_state, fingerprint) in list(_KNOWN.items()):
        if other is model or _signature(other_state) != signature or parameter_state(other) != other_state:
            continue
        pairs = zip(model.parameters(), other.parameters(), strict=True)
        if all(torch.equal(_bits(mine), _bits(theirs)) for mine, theirs in pairs):
            return fingerprint
    return None


def parameter_snapshot(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, contiguous CPU tensor) of every named parameter, for `fingerprint_of` to hash later
    (on another thread: hashlib releases the GIL, so hashing can overlap GPU work)."""
    return [(name, parameter.detach().to("cpu").contiguous()) for name, parameter in model.named_parameters()]


def fingerprint_of(snapshot: list[tuple[str, torch.Tensor]]) -> str:
    digest = hashlib.sha256()
    for name, tensor in snapshot:
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(repr(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return digest.hexdigest()
