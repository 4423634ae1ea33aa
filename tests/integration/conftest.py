"""Real servers on loopback for the integration suite, each in a temporary directory.

- S3: `moto_server` (from `moto[server]`), one bucket.
- MLflow: `mlflow server` with a SQLite backend and its artifacts in that S3 bucket; only the
  server gets the S3 endpoint and keys (`--serve-artifacts`), clients need just the tracking URI.
- PostgreSQL: Debian's binaries (`/usr/lib/postgresql/<major>/bin`), `initdb -A trust`, run as
  the `postgres` user when the tests run as root (the server refuses to run as root).

Servers start once per session, on free ports; MLflow's first start migrates its schema (~40 s),
so it is launched as soon as collection shows a test that needs it, and boots while others run.
A test is skipped only when a server's binary is genuinely missing.

Under pytest-xdist (`make test`: `-n 2 --dist loadgroup`) this tier is one group (the scheduler in
tests/conftest.py): it runs on one worker, which starts each server once; the other worker never
starts one. Sharing servers between workers instead would need the tests to be safe against each
other on one MLflow server and bucket; a set per worker would cost another MLflow boot (~40 s of one
core) and a second PostgreSQL. A worker cannot know at collection which tests it will get, so there
MLflow boots when the worker's first test of this tier starts.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BUCKET = "lethe-it"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "lethe-test", "AWS_SECRET_ACCESS_KEY": "lethe-test-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
VENV_BIN = Path(sys.executable).parent


_BOOT_MLFLOW_ON_FIRST_TEST: list[bool] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)
    if any(_needs_mlflow_server(item) for item in items):
        if hasattr(config, "workerinput"):  # an xdist worker: boot only where the tier runs
            _BOOT_MLFLOW_ON_FIRST_TEST.append(True)
        else:
            _boot_mlflow()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The first test of this tier on an xdist worker: start MLflow's boot (see the module doc)."""
    if _BOOT_MLFLOW_ON_FIRST_TEST:
        _BOOT_MLFLOW_ON_FIRST_TEST.clear()
        _boot_mlflow()


def _boot_mlflow() -> None:
    with contextlib.suppress(MissingBinary):  # if so, the fixture skips with the reason
        _SERVERS.mlflow().start()  # boots while the tests before it run


def _needs_mlflow_server(item: pytest.Item) -> bool:
    if "mlflow_server" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("tracking_uri") == "server"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SERVERS.stop_all()


class MissingBinary(Exception):
    pass


def find_binary(name: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        raise MissingBinary(f"{name} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], *, timeout: float, what: str, process: subprocess.Popen | None,
               log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    state = f"exited with {process.returncode}" if process is not None and process.poll() is not None \
        else f"not ready after {timeout:.0f} s"
    raise RuntimeError(f"{what} {state}; log tail:\n{tail}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


class Server:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"lethe-it-{name}-"))
        self.log = self.dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.ready = False

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        shutil.rmtree(self.dir, ignore_errors=True)


class S3Server(Server):
    def __init__(self) -> None:
        super().__init__("s3")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        if self.process is None:
            self.spawn([find_binary("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)])
        return self

    def wait(self) -> S3Server:
        if not self.ready:
            wait_until(lambda: http_ok(f"{self.endpoint}/moto-api/"), timeout=60, what="moto_server",
                       process=self.process, log=self.log)
            self.client().create_bucket(Bucket=BUCKET)
            self.ready = True
        return self

    def client(self):  # noqa: ANN201 - a boto3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")


class MlflowServer(Server):
    def __init__(self, s3: S3Server) -> None:
        super().__init__("mlflow")
        self.s3 = s3
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.database = self.dir / "mlflow.db"

    def start(self) -> MlflowServer:
        if self.process is None:
            binary = find_binary("mlflow")
            self.s3.start()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "LETHE_"))}
            env.update(S3_KEYS, MLFLOW_S3_ENDPOINT_URL=self.s3.endpoint)
            self.spawn([binary, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                        "--backend-store-uri", f"sqlite:///{self.database}",
                        "--artifacts-destination", f"s3://{BUCKET}/mlflow"], env=env)
        return self

    def wait(self) -> MlflowServer:
        if not self.ready:
            self.s3.wait()
            wait_until(lambda: http_ok(f"{self.uri}/health"), timeout=240, what="mlflow server",
                       process=self.process, log=self.log)
            self.ready = True
        return self


class PostgresServer(Server):
    def __init__(self) -> None:
        super().__init__("postgres")
        self.port = free_port()
        self.bin = self._bindir()
        self.data = self.dir / "data"
        self.user = None if os.geteuid() else self._postgres_user()

    @staticmethod
    def _bindir() -> Path:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                            key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        if candidates:
            return candidates[-1].parent
        if shutil.which("pg_ctl") and shutil.which("initdb"):
            return Path(shutil.which("pg_ctl")).parent
        raise MissingBinary("PostgreSQL server binaries (initdb, pg_ctl) are not installed "
                            "(apt-get install postgresql)")

    @staticmethod
    def _postgres_user() -> pwd.struct_passwd:
        try:
            return pwd.getpwnam("postgres")
        except KeyError as exc:
            raise MissingBinary("running as root without a 'postgres' user to run the server as") from exc

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.user else []
        subprocess.run([*prefix, *argv], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)

    def start(self) -> PostgresServer:
        if self.user:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "lethe", "-E", "UTF8",
                  "--no-sync")
        options = (f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "-t", "60", "start")
        self.ready = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://lethe@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=lethe dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.ready:
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class Servers:
    def __init__(self) -> None:
        self._s3: S3Server | None = None
        self._mlflow: MlflowServer | None = None
        self._postgres: PostgresServer | None = None

    def s3(self) -> S3Server:
        if self._s3 is None:
            find_binary("moto_server")
            self._s3 = S3Server()
        return self._s3

    def mlflow(self) -> MlflowServer:
        if self._mlflow is None:
            find_binary("mlflow")
            self._mlflow = MlflowServer(self.s3())
        return self._mlflow

    def postgres(self) -> PostgresServer:
        if self._postgres is None:
            self._postgres = PostgresServer().start()
        return self._postgres

    def stop_all(self) -> None:
        for server in (self._mlflow, self._s3, self._postgres):
            if server is not None:
                server.stop()


_SERVERS = Servers()


def _or_skip(start: Callable[[], Server]) -> Server:
    try:
        return start()
    except MissingBinary as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def s3_server() -> S3Server:
    return _or_skip(lambda: _SERVERS.s3().start().wait())


@pytest.fixture(scope="session")
def mlflow_server() -> MlflowServer:
    return _or_skip(lambda: _SERVERS.mlflow().start().wait())


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return _or_skip(_SERVERS.postgres)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """lethe's own S3 client pointed at the moto server (the standard AWS variables)."""
    from lethe.storage import s3

    for name, value in S3_KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3.reset_clients()
    yield s3_server
    s3.reset_clients()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger database: a SQLite file, or a new database on the PostgreSQL server."""
    from lethe.ledger import dispose_engines

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        yield request.getfixturevalue("postgres_server").create_database()
    dispose_engines()


@pytest.fixture(params=["local", "s3"])
def artifact_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "artifacts")
    request.getfixturevalue("s3_env")
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["embedded", "server"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> str:
    """MLflow embedded (SQLite, local artifacts) or the server (artifacts in S3, proxied)."""
    for name in [*S3_KEYS, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL"]:
        monkeypatch.delenv(name, raising=False)  # clients need nothing but the tracking URI
    if request.param == "server":
        return request.getfixturevalue("mlflow_server").uri
    home = tmp_path_factory.getbasetemp() / "embedded-mlflow"
    monkeypatch.setenv("LETHE_ARTIFACTS", str(home / "artifacts"))
    return f"sqlite:///{home / 'mlflow.db'}"
