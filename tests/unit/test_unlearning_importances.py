"""The importance pass against a naive reference written here, and its metadata.

The reference tests run over every registered method (`lethe.unlearning.methods`): each needs its
naive reference in NAIVE, written from its paper, not from the method object under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lethe.errors import ImportancesError
from lethe.unlearning import Importances, compute_importances, method_names, model_fingerprint


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
    )


def tiny_data(n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=generator), torch.randint(0, 5, (n,), generator=generator)


def batches(x: torch.Tensor, y: torch.Tensor | None, size: int):
    for start in range(0, len(x), size):
        yield x[start:start + size] if y is None else (x[start:start + size], y[start:start + size])


def _lfssd_objective(out, y):  # mean over the batch of ||f(x)||²₂, sample by sample
    return sum((out[i] ** 2).sum() for i in range(len(out))) / len(out)


def _ssd_objective(out, y):  # mean cross-entropy, sample by sample
    return sum(-torch.log_softmax(out[i], dim=0)[y[i]] for i in range(len(out))) / len(out)


#: Per method: (objective of one batch, the term one gradient element adds), as the papers write them.
NAIVE = {
    "lfssd": (_lfssd_objective, lambda g: g.abs()),  # arXiv 2402.19308
    "ssd": (_ssd_objective, lambda g: g * g),  # arXiv 2308.07707
}
REGISTERED = method_names()


def naive_reference(model: nn.Module, x, y, size: int, method: str) -> dict[str, torch.Tensor]:
    """Element by element as the papers write it: one backward per batch, loop over parameters."""
    assert method in NAIVE, f"the importance method {method!r} has no naive reference in this file: write it"
    objective, term = NAIVE[method]
    model.eval()
    totals = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    count = 0
    for start in range(0, len(x), size):
        model.zero_grad()
        out = model(x[start:start + size])
        objective(out, y[start:start + size]).backward()
        for name, p in model.named_parameters():
            totals[name] += term(p.grad.detach())
        count += 1
    model.zero_grad()
    return {name: t / count for name, t in totals.items()}


def test_every_registered_method_has_a_reference_here() -> None:
    assert set(REGISTERED) <= set(NAIVE) and {"lfssd", "ssd"} <= set(REGISTERED)


@pytest.mark.parametrize("method", REGISTERED)
def test_matches_naive_reference(method: str) -> None:
    model, (x, y) = tiny_model(), tiny_data()
    ours = compute_importances(model, batches(x, y, 8), method=method, progress=False)
    reference = naive_reference(tiny_model(), x, y, 8, method)
    assert set(ours) == set(reference)
    for name, expected in reference.items():
        torch.testing.assert_close(ours[name], expected, rtol=1e-6, atol=1e-9)
    assert ours.num_batches == 5 and ours.num_samples == 40 and ours.batch_size == 8
    assert ours.method == method


def test_bn_affine_bias_and_head_all_covered_and_nonzero() -> None:
    model, (x, _) = tiny_model(), tiny_data()
    importances = compute_importances(model, batches(x, None, 10), progress=False)
    assert set(importances) == {name for name, _ in model.named_parameters()}
    assert "1.weight" in importances and "1.bias" in importances  # BatchNorm affine
    assert all(float(v.sum()) > 0 for v in importances.values())


def test_ssd_differs_from_lfssd() -> None:
    model, (x, y) = tiny_model(), tiny_data()
    lfssd = compute_importances(model, batches(x, y, 8), method="lfssd", progress=False)
    ssd = compute_importances(model, batches(x, y, 8), method="ssd", progress=False)
    assert not torch.allclose(lfssd["4.weight"], ssd["4.weight"])


@pytest.mark.parametrize("method", REGISTERED)
def test_unlabelled_batches_are_refused_exactly_when_the_method_needs_labels(method: str) -> None:
    from lethe.unlearning import get_method

    model, (x, _) = tiny_model(), tiny_data()
    if get_method(method).needs_labels:
        with pytest.raises(ImportancesError, match=f"{method.upper()} importances need labels"):
            compute_importances(model, batches(x, None, 8), method=method, progress=False)
    else:
        assert compute_importances(model, batches(x, None, 8), method=method, progress=False).method == method
    assert get_method("ssd").needs_labels and not get_method("lfssd").needs_labels


@pytest.mark.parametrize("method", REGISTERED)
def test_model_left_as_it_was(method: str) -> None:
    model, (x, y) = tiny_model(), tiny_data()
    model.train()
    model[0].weight.requires_grad_(False)
    before = model_fingerprint(model)
    running_mean = model[1].running_mean.clone()
    compute_importances(model, batches(x, y, 8), method=method, progress=False)
    assert model.training
    assert model[0].weight.requires_grad is False and model[4].weight.requires_grad is True
    assert model_fingerprint(model) == before
    assert torch.equal(model[1].running_mean, running_mean)  # eval mode: BN stats untouched
    assert all(p.grad is None for p in model.parameters())


def test_dataloader_batch_size_is_recorded() -> None:
    model, (x, y) = tiny_model(), tiny_data(n=30)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    importances = compute_importances(model, loader, progress=False)
    assert importances.batch_size == 16 and importances.num_batches == 2 and importances.num_samples == 30


@pytest.mark.parametrize("method", REGISTERED)
def test_shard_merge_equals_one_pass(method: str) -> None:
    model, (x, y) = tiny_model(), tiny_data(n=48)
    whole = compute_importances(model, batches(x, y, 8), method=method, progress=False)
    shards = [compute_importances(model, batches(x[a:b], y[a:b], 8), method=method, progress=False)
              for a, b in [(0, 16), (16, 40), (40, 48)]]
    merged = Importances.merge(shards)
    assert merged.method == method
    assert merged.num_batches == whole.num_batches and merged.num_samples == whole.num_samples
    for name in whole:
        torch.testing.assert_close(merged[name], whole[name], rtol=1e-6, atol=1e-9)


def test_merge_refuses_mismatches() -> None:
    model, (x, y) = tiny_model(), tiny_data()
    a = compute_importances(model, batches(x, y, 8), progress=False)
    with pytest.raises(ImportancesError, match="batch_size"):
        Importances.merge([a, compute_importances(model, batches(x, y, 10), progress=False)])
    with pytest.raises(ImportancesError, match="method"):
        Importances.merge([a, compute_importances(model, batches(x, y, 8), method="ssd", progress=False)])
    with pytest.raises(ImportancesError, match="model_fingerprint"):
        Importances.merge([a, compute_importances(tiny_model(seed=3), batches(x, y, 8), progress=False)])


def test_save_load_roundtrip_keeps_values_and_metadata(tmp_path) -> None:
    model, (x, y) = tiny_model(), tiny_data()
    importances = compute_importances(model, batches(x, y, 8), progress=False)
    loaded = Importances.load(importances.save(tmp_path / "full.safetensors"))
    assert loaded.metadata == importances.metadata
    for name in importances:
        assert torch.equal(loaded[name], importances[name])


def test_load_of_garbage_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ImportancesError, match="cannot read"):
        Importances.load(path)
    with pytest.raises(ImportancesError, match="no importances file"):
        Importances.load(tmp_path / "missing.safetensors")


def test_read_only_mapping() -> None:
    model, (x, _) = tiny_model(), tiny_data()
    importances = compute_importances(model, batches(x, None, 8), progress=False)
    with pytest.raises(TypeError):
        importances["4.weight"] = torch.zeros(1)  # type: ignore[index]


def test_nan_model_output_is_refused() -> None:
    model, (x, _) = tiny_model(), tiny_data()
    with torch.no_grad():
        model[4].bias.fill_(float("nan"))
    with pytest.raises(ImportancesError, match="NaN"):
        compute_importances(model, batches(x, None, 8), progress=False)


@pytest.mark.parametrize("method", REGISTERED)
def test_per_sample_equals_the_reference_at_batch_size_one(method: str) -> None:
    model, (x, y) = tiny_model(), tiny_data(n=20)
    ours = compute_importances(model, batches(x, y, 8), method=method, per_sample=True, progress=False)
    reference = naive_reference(tiny_model(), x, y, 1, method)
    for name, expected in reference.items():
        torch.testing.assert_close(ours[name], expected, rtol=1e-5, atol=1e-8)
    assert ours.batch_size == 1 and ours.num_batches == 20 and ours.num_samples == 20
    batched = compute_importances(model, batches(x, y, 1), method=method, progress=False)
    assert batched.metadata == ours.metadata  # mergeable with, and refused against, the same things


def test_importances_carry_the_fingerprint_of_the_exact_parameters() -> None:
    """The fingerprint (hashed on a thread during the pass) is sha256 over every parameter's name,
    dtype, shape and bytes, in module order: the format stored importances and model cards use."""
    import hashlib

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    expected = hashlib.sha256()
    for name, param in model.named_parameters():
        data = param.detach().contiguous()
        for part in (name, str(data.dtype), repr(tuple(data.shape))):
            expected.update(part.encode())
        expected.update(data.numpy().tobytes())
    importances = compute_importances(model, [torch.randn(5, 4)], progress=False)
    assert importances.model_fingerprint == model_fingerprint(model) == expected.hexdigest()
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-3
    assert compute_importances(model, [torch.randn(5, 4)], progress=False).model_fingerprint != (
        importances.model_fingerprint
    )


# The exact per-sample path (hooks on one batched backward) against the torch.func reference.

class Tokens(nn.Module):
    """A Linear on (B, tokens, features) inputs: shared over tokens, so per-sample products are needed."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(3, 6)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.embed(x.reshape(len(x), 12, 3))).mean(dim=1))


def mixed_model(seed: int = 0) -> nn.Module:
    """Conv with bias, stride and dilation; BatchNorm2d and BatchNorm1d; Linear without bias; inplace ReLU."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=2, dilation=2), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
        nn.Conv2d(3, 4, 2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 7, bias=False),
        nn.BatchNorm1d(7), nn.ReLU(inplace=True), nn.Linear(7, 5),
    )
    for module in model.modules():  # non-trivial running statistics, as after training
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


def digits_convnet(seed: int = 0) -> nn.Module:
    from lethe.models import build_model

    torch.manual_seed(seed)
    return build_model("convnet", num_classes=5, in_channels=1)


def torch_func_only(monkeypatch) -> None:
    from lethe.unlearning import importances as engine

    monkeypatch.setattr(engine._ExactPerSample, "of", classmethod(lambda cls, *args: None))


def per_sample_importances(model_fn, method: str, dtype: torch.dtype, n: int = 24, group: int = 8):
    x, y = tiny_data(n=n)
    return compute_importances(model_fn().to(dtype), batches(x.to(dtype), y, group), method=method,
                               per_sample=True, progress=False)


def _per_sample_pair(model_fn, monkeypatch, method: str, dtype: torch.dtype):
    from lethe.unlearning import importances as engine

    with monkeypatch.context() as patch:  # every batch takes the hook path
        patch.setattr(engine, "_per_sample_grads", lambda *a: pytest.fail("torch.func path taken"))
        fast = per_sample_importances(model_fn, method, dtype)
    with monkeypatch.context() as patch:
        torch_func_only(patch)
        reference = per_sample_importances(model_fn, method, dtype)
    return fast, reference


EXACT_MODELS = {"tiny": tiny_model, "mixed": mixed_model, "convnet": digits_convnet, "tokens": Tokens}


@pytest.mark.parametrize("method", REGISTERED)
@pytest.mark.parametrize("model_name", sorted(EXACT_MODELS))
def test_exact_per_sample_path_equals_torch_func(model_name: str, method: str, monkeypatch) -> None:
    for dtype, rtol in ((torch.float64, 1e-10), (torch.float32, 1e-6)):
        fast, reference = _per_sample_pair(EXACT_MODELS[model_name], monkeypatch, method, dtype)
        assert fast.metadata == reference.metadata
        for name, expected in reference.items():
            assert float(expected.abs().sum()) > 0, name
            # Relative to each tensor's scale: single elements near zero carry float32 rounding.
            scale = float(expected.abs().max())
            torch.testing.assert_close(fast[name], expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("method", REGISTERED)
def test_exact_per_sample_path_in_small_memory_chunks(method: str, monkeypatch) -> None:
    from lethe.unlearning import importances as engine

    whole = per_sample_importances(digits_convnet, method, torch.float64)
    monkeypatch.setattr(engine, "CPU_WORK_BYTES", 1)  # one sample per product
    chunked = per_sample_importances(digits_convnet, method, torch.float64)
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-12, atol=0)


class SharedTwice(nn.Module):
    """The same Linear applied twice per sample: its per-sample gradient sums both uses before the term."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(36, 36)
        self.head = nn.Linear(36, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(len(x), -1)
        return self.head(torch.relu(self.layer(torch.relu(self.layer(h)))))


class WithLayerNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = nn.LayerNorm(36)
        self.head = nn.Linear(36, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x.reshape(len(x), -1)))


@pytest.mark.parametrize("method", REGISTERED)
@pytest.mark.parametrize("model_fn", [SharedTwice, WithLayerNorm], ids=["shared", "layernorm"])
def test_models_the_hook_path_cannot_cover_fall_back_to_the_reference(model_fn, method: str) -> None:
    x, y = tiny_data(n=12)
    ours = compute_importances(model_fn(), batches(x, y, 5), method=method, per_sample=True, progress=False)
    reference = naive_reference(model_fn(), x, y, 1, method)
    for name, expected in reference.items():
        torch.testing.assert_close(ours[name], expected, rtol=1e-5, atol=1e-8)
