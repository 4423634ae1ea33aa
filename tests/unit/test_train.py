"""Training, fine-tuning and `lethe train`: the models it writes and the inputs it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lethe.cli import main
from lethe.data import SampleSet, resolve_forget_set, subject_map
from lethe.errors import DataError, ModelError
from lethe.models import build_model, load_model, read_card
from lethe.models.baseline import excluded_digest
from lethe.models.training import augment_batch, finetune, model_accuracy, predict, train_classifier
from lethe.unlearning import model_fingerprint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_convnet_learns_digits(digits_convnet: tuple, digits_convnet_train_record: dict,
                               digits_test: SampleSet) -> None:
    model, card = digits_convnet
    measured = model_accuracy(model, digits_test)
    assert measured >= 0.9
    assert measured == pytest.approx(digits_convnet_train_record["test_accuracy"], abs=1e-6)
    record = digits_convnet_train_record
    assert record["fingerprint"] == card.fingerprint == model_fingerprint(model)
    assert record["model"] == "convnet" and record["dataset"] == "digits" and record["n_train"] == 1438
    assert record["excluded"] == 0 and record["excluded_sha256"] is None
    assert 0 < record["seconds"] <= record["wall_seconds"] and len(record["history"]) == record["epochs"]
    assert predict(model, digits_test).shape == (len(digits_test),)


def test_finetune_trains_on_the_retain_set_only(digits_convnet: tuple, digits_train: SampleSet,
                                                digits_test: SampleSet) -> None:
    model, _ = digits_convnet
    before = model_fingerprint(model)
    retain = resolve_forget_set(digits_train, forget_class=0).retain
    result = finetune(model, retain, epochs=1, batch_size=64, progress=False, test=digits_test)
    assert model_fingerprint(model) != before and not model.training
    assert result.n_train == len(retain) and result.epochs == 1
    assert result.test_accuracy == pytest.approx(model_accuracy(model, digits_test))
    assert result.test_accuracy > 0.8  # class 0 is a tenth of the test set; the rest stays learnt


def test_training_is_reproducible(digits_train: SampleSet) -> None:
    part = digits_train.subset(torch.arange(200))
    prints = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("convnet", num_classes=10, in_channels=1, width=4)
        train_classifier(model, part, None, epochs=1, batch_size=50, seed=5, progress=False, device="cpu")
        prints.append(model_fingerprint(model))
    assert prints[0] == prints[1]


def test_training_refuses_mismatched_data(digits_train: SampleSet) -> None:
    model = build_model("convnet", num_classes=10, in_channels=3, width=4)
    with pytest.raises(ModelError, match="3-channel"):
        train_classifier(model, digits_train, None, epochs=1, progress=False)
    model = build_model("convnet", num_classes=5, in_channels=1, width=4)
    with pytest.raises(ModelError, match="5 classes"):
        train_classifier(model, digits_train, None, epochs=1, progress=False)
    model = build_model("convnet", num_classes=10, in_channels=1, width=4)
    with pytest.raises(DataError, match="empty"):
        train_classifier(model, digits_train.subset(torch.arange(0)), None, epochs=1, progress=False)


def test_augment_keeps_shape_and_content() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape and not torch.equal(out, x)


def cli_train(tmp_path: Path, *extra: str, name: str = "m") -> tuple[int, Path]:
    out = tmp_path / name
    code = main(["train", "--dataset", "digits", "--model", "convnet", "--epochs", "1", "--batch-size", "64",
                 "--arch-arg", "width=4", "--out", str(out), "--no-progress", "--device", "cpu", *extra])
    return code, out


def test_cli_trains_the_gold_standard_without_the_forget_set(
        tmp_path: Path, digits_train: SampleSet, capsys: pytest.CaptureFixture) -> None:
    subjects = subject_map(digits_train)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("digits/train/7\n\ndigits/train/8\n")
    code, out = cli_train(tmp_path, "--exclude-ids", "digits/train/5", "digits/train/7",
                          "--exclude-ids-file", str(ids_file), "--exclude-subjects", "subject-00003",
                          "--seed", "2")
    assert code == 0
    record = json.loads((out / "train.json").read_text())
    excluded = {"digits/train/5", "digits/train/7", "digits/train/8", *subjects["subject-00003"]}
    assert record["excluded"] == len(excluded) and record["n_train"] == len(digits_train) - len(excluded)
    assert record["excluded_sha256"] == excluded_digest(sorted(excluded)) and record["seed"] == 2
    assert "subject-00003" not in (out / "train.json").read_text()
    for key in ("test_accuracy", "epochs", "seconds", "model", "dataset", "fingerprint", "n_train"):
        assert key in record
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["epochs"] == 1
    model, card = load_model(out)
    assert card.fingerprint == record["fingerprint"] and card.extra["excluded"] == len(excluded)
    assert card.arch_kwargs["width"] == 4 and card.dataset == "digits"
    assert "test accuracy" in capsys.readouterr().out

    # --model may name a model directory: its architecture, fresh weights
    code, again = cli_train(tmp_path, name="again")
    code_dir = main(["train", "--dataset", "digits", "--model", str(again), "--epochs", "1", "--batch-size",
                     "64", "--out", str(tmp_path / "from-dir"), "--no-progress", "--device", "cpu"])
    assert code == code_dir == 0
    # same seed, same architecture: the same weights
    assert read_card(tmp_path / "from-dir").fingerprint == read_card(again).fingerprint


def test_the_recipe_records_the_weight_decay_it_trained_with(tmp_path: Path) -> None:
    code, out = cli_train(tmp_path, "--weight-decay", "0")
    assert code == 0
    record = json.loads((out / "train.json").read_text())
    assert record["weight_decay"] == 0.0
    assert record["optimizer"] == "adamw" and record["schedule"] == "onecycle"
    training = read_card(out).extra["training"]
    assert training == {key: record[key] for key in training} and training["weight_decay"] == 0.0
    code, default = cli_train(tmp_path, name="default")
    assert code == 0 and json.loads((default / "train.json").read_text())["weight_decay"] == 5e-4
    # The weight decay changes the training: same seed, other weights.
    assert read_card(out).fingerprint != read_card(default).fingerprint


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--weight-decay", "-1"], "must be a finite number >= 0"),
    (["--weight-decay", "nan"], "must be a finite number >= 0"),
    (["--model", "lenet"], "unknown model 'lenet'"),
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent-lethe-dir"], "data dir"),
    (["--exclude-ids", "digits/train/999999"], "1 of 1 sample id(s) not in digits/train"),
    (["--exclude-subjects", "nobody"], "subject"),
    (["--exclude-class", "12"], "class 12"),
    (["--arch-arg", "depth=3"], "bad arguments for convnet"),
    (["--arch-arg", "oops"], "KEY=VALUE"),
    (["--exclude-ids-file", "/nonexistent-lethe-ids.txt"], "cannot read"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              args: list[str], message: str) -> None:
    base = {"--dataset": "digits", "--model": "convnet"}
    for flag in ("--dataset", "--model"):
        if flag in args:
            base[flag] = args[args.index(flag) + 1]
    rest = [a for i, a in enumerate(args)
            if a not in ("--dataset", "--model") and (i == 0 or args[i - 1] not in ("--dataset", "--model"))]
    out = tmp_path / "m"
    code = main(["train", "--dataset", base["--dataset"], "--model", base["--model"], "--epochs", "1",
                 "--out", str(out), "--no-progress", *rest])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("lethe: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()  # bad input changes nothing


def test_cli_refuses_a_mismatched_model_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = cli_train(tmp_path)
    assert code == 0
    card = json.loads((out / "model.json").read_text())
    card["arch_kwargs"] = {"width": 8}
    (out / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="model.json differs from its recorded sha256"):
        load_model(out)
    assert main(["data", "info", "digits", "--split", "test"]) == 0
    assert "fingerprint" in capsys.readouterr().out


def test_cli_data_subjects(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "subjects", "digits", "--head", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("144 subjects over 1438 samples") and lines[1].startswith("subject-00000\t")
    assert len(lines) == 3
