"""Review decisions that race: two `lethe review` processes decide at the same instant, 20 times each for
approve/approve (siblings of one parent) and approve/reject (one version). The ledger, the champion alias
and the MLflow review tags must always agree, and no request is fulfilled that the champion does not
honour.

Two long-lived worker processes run `lethe.cli.main` (real concurrency, imports paid once); the test
writes each try's argv, then a start file both workers spin on. Versions are created with the tags
`register_version` wrote on the first one (a decision reads only tags): each try costs milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lethe.registry.tags import PARENT_VERSION_TAG, REQUEST_COUNT_TAG, REQUEST_IDS_TAG, REVIEW

TRIES = 20
REQUESTS_PER_VERSION = 3

WORKER = textwrap.dedent("""
    import contextlib, io, json, sys, time
    from pathlib import Path
    from lethe.cli import main
    box, me = Path(sys.argv[1]), sys.argv[2]
    (box / f"ready-{me}").touch()
    try_no = 0
    while True:
        task = box / f"task-{try_no}-{me}.json"
        while not task.exists():
            time.sleep(0.002)
        argv = json.loads(task.read_text())
        if argv is None:
            break
        while not (box / f"go-{try_no}").exists():
            pass
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        done = box / f"done-{try_no}-{me}.json"
        done.with_suffix(".tmp").write_text(json.dumps([code, out.getvalue(), err.getvalue()]))
        done.with_suffix(".tmp").replace(done)
        try_no += 1
""")


def _put(path: Path, value: object) -> None:
    """Write whole or not at all: the other process polls for the file."""
    path.with_suffix(".tmp").write_text(json.dumps(value))
    path.with_suffix(".tmp").replace(path)


@pytest.mark.slow
def test_racing_review_decisions_always_agree(tmp_path: Path, digits_convnet_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from lethe.ledger import FULFILLED, NEEDS_REVIEW, PENDING, Ledger
    from lethe.registry import Registry

    env = {"LETHE_HOME": str(tmp_path / "home"), "LETHE_ARTIFACTS": str(tmp_path / "artifacts"),
           "LETHE_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "LETHE_MODEL_NAME": "raced",
           "LETHE_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}", "LETHE_DEMO": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LETHE_SUBJECT_KEY", raising=False)
    registry = Registry()
    ledger = Ledger()
    base = registry.register_version(digits_convnet_dir, gate={"passed": True, "reasons": []},
                                     scenario="base")
    template = {k: v for k, v in registry.version(base.version).tags.items()}
    subject = iter(range(10**6))

    honours = {base.version: ()}

    def pending_child(parent: str) -> str:
        ids = [ledger.add(f"subject-{next(subject)}").request.id for _ in range(REQUESTS_PER_VERSION)]
        honoured = [*honours[parent], *ids]
        tags = {**template, PARENT_VERSION_TAG: parent, REQUEST_IDS_TAG: ",".join(honoured),
                REQUEST_COUNT_TAG: str(len(honoured)), "lethe.gate": "fail", REVIEW: "pending"}
        mv = registry.client.create_model_version(registry.model_name, f"runs:/{base.run_id}/model",
                                                  run_id=base.run_id, tags=tags)
        honours[str(mv.version)] = tuple(honoured)
        run = f"run-{mv.version}"
        ledger.claim(run, request_ids=ids)
        ledger.mark_needs_review(ids, run_id=run, model_version=str(mv.version),
                                 outcome={"gate": {"decision": "review"}}, reason="gate failed")
        return str(mv.version)

    box = tmp_path / "box"
    box.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(box), name], env={**os.environ, **env})
               for name in ("a", "b")]
    try:
        deadline = time.monotonic() + 120
        while not all((box / f"ready-{n}").exists() for n in "ab"):
            started = time.monotonic() < deadline and all(w.poll() is None for w in workers)
            assert started, "the workers did not start"
            time.sleep(0.05)
        outcomes = {"approve/approve": [], "approve/reject": []}
        for try_no in range(2 * TRIES):
            champion = registry.champion_version()
            if try_no < TRIES:
                kind, first, second = "approve/approve", pending_child(champion), pending_child(champion)
                argvs = {"a": ["review", "approve", first], "b": ["review", "approve", second]}
            else:
                kind = "approve/reject"
                first = second = pending_child(champion)
                argvs = {"a": ["review", "approve", first], "b": ["review", "reject", first]}
            for name, argv in argvs.items():
                _put(box / f"task-{try_no}-{name}.json", [*argv, "--by", "Dana", "--reason", f"try {try_no}"])
            (box / f"go-{try_no}").touch()
            results = {}
            for name in "ab":
                done = box / f"done-{try_no}-{name}.json"
                while not done.exists():
                    assert time.monotonic() < deadline + 600 and workers[0].poll() is None, "a worker died"
                    time.sleep(0.01)
                results[name] = json.loads(done.read_text())
            for code, _out, err in results.values():
                assert code in (0, 2) and "Traceback" not in err, results
                assert code == 0 or len(err.strip().splitlines()) == 1, results
            outcomes[kind].append(tuple(code for code, _, _ in results.values()))

            # The ledger, the alias and the tags agree.
            now = registry.champion_version()
            review = {v.version: v for v in registry.versions()}
            requests = ledger.list_requests()
            versions = {first, second}
            for version in versions:
                states = {r.state for r in requests if r.model_version == version}
                if review[version].review == "approved":
                    assert states == {FULFILLED}, (kind, version, states)
                elif review[version].review == "rejected":
                    assert not states or states == {PENDING}, (kind, version, states)
                else:
                    assert review[version].review == "pending" and states == {NEEDS_REVIEW}, (kind, version)
            approved = [v for v in versions if review[v].review == "approved"]
            if kind == "approve/approve":
                assert approved and now in approved, (kind, results, now, approved)
            assert now == (approved[0] if approved else champion), (kind, results, now, approved)
            assert len(approved) <= 1, (kind, results, approved)
            # Every fulfilled request is honoured by the champion.
            assert {r.id for r in requests if r.state == FULFILLED} <= set(review[now].request_ids)
        for name in "ab":
            _put(box / f"task-{2 * TRIES}-{name}.json", None)
    finally:
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    # Each pair: one decision made, the other refused in one line.
    assert all(sorted(codes) == [0, 2] for codes in outcomes["approve/approve"] + outcomes["approve/reject"])
