"""Throwaway Redis deployments on loopback, started from ``redis-server``: a Cluster
of 3 masters + 3 replicas (ports 7100-7105) and a Sentinel set-up (master 6400,
replicas 6401-6402, Sentinels 26400-26402). Used by the test fixtures and the
deployment benchmark; every process is ours and is stopped by :meth:`stop`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis_support import forget_redis_namespace

CLUSTER_PORTS = tuple(range(7100, 7106))
SENTINEL_MASTER = 6400
SENTINEL_REPLICAS = (6401, 6402)
SENTINEL_PORTS = (26400, 26401, 26402)
SERVICE = "apikeys"


class ServerError(RuntimeError):
    """A deployment could not be started (binary missing, port taken, timeout)."""


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _cli(port: int, *args: str, timeout: float = 10.0) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.strip()


def _until(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise ServerError(f"timed out waiting for {what}")


class Deployment:
    """Processes started in ``root``; :meth:`stop` ends them all."""

    def __init__(self, root: Path) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise ServerError("redis-server / redis-cli not found on PATH")
        self.root = root
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.args: dict[int, list[str]] = {}

    def _spawn(self, port: int, args: list[str]) -> None:
        if _listening(port):
            raise ServerError(f"port {port} is already taken")
        log = open(self.root / f"{port}.log", "ab")  # noqa: SIM115 - the child holds it
        with log:
            self.processes[port] = subprocess.Popen(
                ["redis-server", *args], stdout=log, stderr=subprocess.STDOUT
            )
        self.args[port] = args
        _until(f"redis-server on {port}", lambda: _listening(port), 10.0)

    def server(self, port: int, *extra: str) -> None:
        """Start a data server on ``port`` (no persistence, its own directory)."""
        home = self.root / str(port)
        home.mkdir(exist_ok=True)
        self._spawn(
            port,
            ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--repl-diskless-sync-delay", "0", "--dir", str(home), *extra],
        )  # fmt: skip

    def kill(self, port: int) -> None:
        """Kill the server on ``port`` at once (SIGKILL: no goodbye to replicas)."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)

    def restart(self, port: int) -> None:
        """Start again a server :meth:`kill` stopped, with the same arguments."""
        self._spawn(port, self.args[port])

    def stop(self) -> None:
        """Terminate every process started here."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()


def _in_sync(port: int) -> bool:
    """A master, or a replica whose link to its master is up."""
    info = _cli(port, "info", "replication")
    return "role:master" in info or "master_link_status:up" in info


def _cluster_ok(port: int) -> bool:
    return "cluster_state:ok" in _cli(port, "cluster", "info")


def start_cluster(root: Path) -> Deployment:
    """3 masters + 3 replicas on 7100-7105; returns once every node reports ok."""
    deployment = Deployment(root)
    try:
        for port in CLUSTER_PORTS:
            deployment.server(
                port, "--cluster-enabled", "yes", "--cluster-config-file",
                f"nodes-{port}.conf", "--cluster-node-timeout", "1000",
                "--cluster-replica-validity-factor", "0",
            )  # fmt: skip
        nodes = [f"127.0.0.1:{port}" for port in CLUSTER_PORTS]
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1",
             "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed: {created.stdout[-500:]}")
        wait_cluster_ok()
    except BaseException:
        deployment.stop()
        raise
    return deployment


def wait_cluster_ok() -> None:
    """Until every node reports ``cluster_state:ok`` and sees no failed node."""
    for port in CLUSTER_PORTS:
        _until(
            f"cluster_state:ok on {port}",
            lambda p=port: _cluster_ok(p) and "fail" not in _cli(p, "cluster", "nodes"),
            30.0,
        )
    for port in CLUSTER_PORTS:
        _until(f"{port} in sync", lambda p=port: _in_sync(p), 30.0)


def cluster_master_of(key: str) -> int:
    """The port of the master serving ``key``'s slot right now."""
    slot = int(_cli(CLUSTER_PORTS[0], "cluster", "keyslot", key))
    for port in CLUSTER_PORTS:
        if not _listening(port):
            continue
        for line in _cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        break
    raise ServerError(f"no master serves slot {slot}")


def start_sentinel(root: Path) -> Deployment:
    """Master 6400, replicas 6401-6402, Sentinels 26400-26402 (quorum 2)."""
    deployment = Deployment(root)
    try:
        deployment.server(SENTINEL_MASTER)
        for port in SENTINEL_REPLICAS:
            deployment.server(port, "--replicaof", "127.0.0.1", str(SENTINEL_MASTER))
        for port in SENTINEL_REPLICAS:
            _until(
                f"replica {port} in sync",
                lambda p=port: "master_link_status:up" in _cli(p, "info", "replication"),
                20.0,
            )
        for port in SENTINEL_PORTS:
            config = root / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {root}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {SENTINEL_MASTER} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            deployment._spawn(port, [str(config), "--sentinel"])
        wait_sentinel_replicas()
    except BaseException:
        deployment.stop()
        raise
    return deployment


def wait_sentinel_replicas() -> None:
    """Until every Sentinel sees a master and two replicas in sync, none down."""

    def healthy(port: int) -> bool:
        replicas = _cli(port, "sentinel", "replicas", SERVICE)
        return replicas.count("slave") >= 2 and "_down" not in replicas

    for port in SENTINEL_PORTS:
        _until(f"sentinel {port} sees the replicas", lambda p=port: healthy(p), 30.0)


def sentinel_master() -> int:
    """The port the Sentinels name as master now."""
    reply = _cli(SENTINEL_PORTS[0], "sentinel", "get-master-addr-by-name", SERVICE)
    return int(reply.split()[-1])


def sentinel_url(db: int = 0) -> str:
    nodes = ",".join(f"127.0.0.1:{port}" for port in SENTINEL_PORTS)
    return f"redis+sentinel://{nodes}/{SERVICE}/{db}"


def cluster_url() -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in CLUSTER_PORTS[:3])


def forget(url: str, namespace: str) -> None:
    """Delete every key this test wrote (on every master of a cluster)."""
    forget_redis_namespace(url, namespace)
