"""`make cluster`: the production shape on this machine. A multi-node Ray cluster driven by Ray's
own autoscaler (v2) through its fake multi-node provider, which starts each "node" as a real
raylet on loopback, and the application deployed from `serve_config.yaml` through the dashboard's
REST API, as KubeRay does.

The node groups below are the one source of both this cluster and the RayService's
`workerGroupSpecs` (`scripts/render_rayservice.py` renders them), so the two cannot drift:
a "gpu" group whose nodes advertise `GPU: 1` (the Segmenter asks for one), scaled from 0, and a
"cpu" group for the light deployments. The head runs no deployment replica (`CPU: 0`): only
Serve's controller and HTTP proxy and the job tracker, which is pinned to it.

On a machine without a GPU the "gpu" nodes still advertise one; the replicas placed there run
the model on the CPU (PyTorch finds no CUDA device), which the launcher says when it starts.

    python -m deployments.cluster [--max-gpu-nodes 3] [--idle-timeout-s 60]

Foreground like `make serve`: Ctrl-C (SIGINT/SIGTERM) stops every process it started.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployments.local import wait_for_ok
from deployments.ray_environment import RAY_ENVIRONMENT
from deployments.settings import DATA_ROOT, REPO_ROOT, Settings

SERVE_CONFIG = DATA_ROOT / "serve_config.yaml"
DASHBOARD_PORT = 8265
IDLE_TIMEOUT_S = 60  # an idle worker node is removed after this long (autoscaler v2)
CLUSTER_TAG = "LITHOSEG_CLUSTER_ID"  # in the environment of every process of one local cluster
FAKE_HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"  # Ray's fake provider's


@dataclass(frozen=True)
class NodeGroup:
    """One kind of Ray node: what Ray schedules on (`ray_resources`) and what Kubernetes gives the
    pod (`cpu`, `memory`, `gpus`)."""

    name: str
    ray_cpus: int
    gpus: int
    cpu: str
    memory: str
    min_replicas: int = 0
    max_replicas: int = 0
    start_params: dict[str, str] = field(default_factory=dict)

    def ray_resources(self) -> dict[str, int]:
        return {"CPU": self.ray_cpus, **({"GPU": self.gpus} if self.gpus else {})}

    def rayStartParams(self) -> dict[str, str]:  # noqa: N802 - KubeRay's field name
        return {"num-cpus": str(self.ray_cpus), **({"num-gpus": str(self.gpus)} if self.gpus else {}), **self.start_params}


# The head holds Serve's controller, the HTTP proxy and the job tracker; `num-cpus: 0` keeps every
# deployment replica off it, so it never runs the model and never needs scaling.
HEAD = NodeGroup("head", ray_cpus=0, gpus=0, cpu="2", memory="8Gi", start_params={"dashboard-host": "0.0.0.0"})
# One Segmenter replica per GPU node (2 CPUs + 1 GPU each); 4 logical CPUs keep room for the
# proxy and the transfers, and fewer CPUs than a CPU node so the light deployments prefer those.
GPU = NodeGroup("gpu", ray_cpus=4, gpus=1, cpu="8", memory="32Gi", min_replicas=0, max_replicas=8)
# The light deployments at their minimum (Ingress 2 x 0.5, JobRunner 2 x 0.25, Decoder, Tiler and
# Compositor 1 each: 4.5 CPUs) fit one CPU node; they autoscale onto more.
CPU = NodeGroup("cpu", ray_cpus=8, gpus=0, cpu="8", memory="16Gi", min_replicas=1, max_replicas=4)
WORKER_GROUPS = (GPU, CPU)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_ip() -> str:
    """This machine's address as Ray advertises it (127.0.0.1 for the local cluster)."""
    from ray._private.services import get_node_ip_address

    return str(get_node_ip_address())


def autoscaling_config(gcs_address: str, max_gpu_nodes: int, max_cpu_nodes: int, idle_timeout_s: float) -> dict[str, Any]:
    """The autoscaler's cluster config for the fake multi-node provider (Ray's
    `fake_multi_node/example.yaml`, with our groups)."""
    object_store = 512 * 1024 * 1024

    def node_type(group: NodeGroup, max_nodes: int) -> dict[str, Any]:
        return {
            "resources": {**group.ray_resources(), "object_store_memory": object_store},
            "node_config": {},
            "min_workers": group.min_replicas,
            "max_workers": min(group.max_replicas, max_nodes),
        }

    return {
        "cluster_name": "lithoseg-local",
        "max_workers": max_gpu_nodes + max_cpu_nodes,
        "provider": {
            # Ray's FakeMultiNodeProvider, named as an external provider: the wheel lacks the
            # defaults file ("fake_multi_node/example.yaml") that type "fake_multinode" reads
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "launch_multiple": True,
            "head_node_id": FAKE_HEAD_NODE_ID,
            "gcs_address": gcs_address,
        },
        "available_node_types": {
            "ray.head.default": {"resources": HEAD.ray_resources(), "node_config": {}, "max_workers": 0},
            GPU.name: node_type(GPU, max_gpu_nodes),
            CPU.name: node_type(CPU, max_cpu_nodes),
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": idle_timeout_s / 60,
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


def local_serve_config(settings: Settings, path: Path = SERVE_CONFIG) -> dict[str, Any]:
    """`serve_config.yaml` as deployed here: HTTP on LITHOSEG_HOST:LITHOSEG_PORT, and the proxy on
    the head only (every "node" shares this machine's network, so one proxy per node would fight
    over the port). Everything else, deployments and autoscaling included, is the file's."""
    config = yaml.safe_load(path.read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {**config.get("http_options", {}), "host": settings.host, "port": settings.port}
    for app in config["applications"]:
        app["args"] = {**app.get("args", {}), "host": settings.host, "port": settings.port}
    return config


def small_machine_config(
    settings: Settings, max_segmenters: int = 3, tiles_per_replica: float = 8, downscale_delay_s: float = 10
) -> dict[str, Any]:
    """`local_serve_config` with the knobs a 2-core machine needs to show scaling in minutes (for
    the cluster test and `bench.cluster_scaling`): a Segmenter policy that wants a replica per
    `tiles_per_replica` tiles of backlog, short scaling delays, one thread per forward pass, and
    the light deployments capped at 2 replicas so they fit the one CPU node."""
    config = local_serve_config(settings)
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] == "Segmenter":
            autoscaling = deployment["autoscaling_config"]
            autoscaling.update(max_replicas=max_segmenters, upscale_delay_s=1, downscale_delay_s=downscale_delay_s)
            autoscaling["policy"]["policy_kwargs"] = {"tiles_per_replica": tiles_per_replica}
            deployment["user_config"] = {**deployment["user_config"], "max_batch_size": 1, "torch_threads": 1, "niceness": 5}
        elif "autoscaling_config" in deployment:
            deployment["autoscaling_config"]["max_replicas"] = 2
    return config


@dataclass
class LocalCluster:
    """A running local autoscaling cluster: its head process (a `ray start --head --block` in a
    process group of its own) and the addresses to reach it."""

    process: subprocess.Popen[bytes]
    cluster_id: str
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    log_path: Path
    token: str  # Ray's token authentication: every REST call carries it

    # -- the REST API (what `serve deploy` and `ray list nodes` use) -------------------------------

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(self.dashboard_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
        return json.loads(text) if text else None

    def deploy(self, config: dict[str, Any]) -> None:
        """`serve deploy`: PUT the whole Serve config to the dashboard (declarative, in place)."""
        self._request("PUT", "/api/serve/applications/", config, timeout=120)

    def serve_status(self) -> dict[str, Any]:
        return dict(self._request("GET", "/api/serve/applications/"))

    def nodes(self) -> list[dict[str, Any]]:
        """Alive nodes, each with its `node_id` and `node_type` (head, gpu, cpu)."""
        answer = self._request("GET", "/api/v0/nodes?limit=1000&detail=true")
        nodes = []
        for node in answer["data"]["result"]["result"]:
            if node.get("state") != "ALIVE":
                continue
            labels = node.get("labels") or {}
            kind = "head" if node.get("is_head_node") else labels.get("ray.io/node-group") or node_group_of(node.get("resources_total", {}))
            nodes.append({"node_id": node["node_id"], "node_type": kind})
        return nodes

    def replicas(self, deployment: str, app: str = "lithoseg") -> list[dict[str, Any]]:
        """The running replicas of one deployment, each with its `node_id`."""
        status = self.serve_status()
        deployments = status.get("applications", {}).get(app, {}).get("deployments", {})
        return [r for r in deployments.get(deployment, {}).get("replicas", []) if r.get("state") == "RUNNING"]

    def sample(self, service_url: str | None = None) -> dict[str, Any]:
        """One observation of the cluster: nodes by group, Segmenter replicas, and (with the
        service's URL) the tracker's figures from its /metrics."""
        nodes = self.nodes()
        observed: dict[str, Any] = {
            "time": time.time(),
            "nodes": {kind: sum(1 for n in nodes if n["node_type"] == kind) for kind in ("head", GPU.name, CPU.name)},
            "segmenter_replicas": len(self.replicas("Segmenter")),
        }
        if service_url:
            observed.update(read_metrics(service_url))
        return observed

    def kill_node(self, node_id: str) -> int:
        """SIGKILL every process of one worker node (its raylet and the workers under it), as a
        node that dies does. Returns how many processes were killed."""
        if node_id == FAKE_HEAD_NODE_ID:
            raise ValueError("Refusing to kill the head node.")
        killed = 0
        for pid in processes_with_env({CLUSTER_TAG: self.cluster_id, "RAY_OVERRIDE_NODE_ID_FOR_TESTING": node_id}):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed

    def stop(self) -> None:
        """Stop the head (which stops what it started), then anything of this cluster still alive."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)  # Ray drains a node for up to 30 s; nothing here needs it
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        for pid in processes_with_env({CLUSTER_TAG: self.cluster_id}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


METRICS_READ = {
    "lithoseg_queue_length": "queued",
    "lithoseg_jobs_in_flight": "in_flight",
    "lithoseg_backlog_tiles": "backlog_tiles",
    "lithoseg_tiles_completed": "tiles_completed",
    "lithoseg_jobs_in_flight_limit": "in_flight_limit",
}


def read_metrics(service_url: str) -> dict[str, float]:
    """The job tracker's gauges from the service's /metrics (Prometheus text)."""
    with urllib.request.urlopen(service_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS_READ:
            values[METRICS_READ[name]] = float(value)
    return values


def node_group_of(resources: dict[str, float]) -> str:
    """The node group (gpu or cpu) a node belongs to, from the resources it offers."""
    return GPU.name if resources.get("GPU") else CPU.name


def processes_with_env(wanted: dict[str, str]) -> Iterator[int]:
    """PIDs of this user's processes whose environment holds every `wanted` variable."""
    needles = [f"{k}={v}".encode() for k, v in wanted.items()]
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(needle in environ for needle in needles):
            yield int(entry)


def start_cluster(
    settings_env: dict[str, str] | None = None,
    max_gpu_nodes: int = 3,
    max_cpu_nodes: int = 2,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    dashboard_port: int = DASHBOARD_PORT,
    wait_s: float = 120,
) -> LocalCluster:
    """Start the head (with the autoscaler) and wait until the dashboard answers. Worker nodes
    come and go as the autoscaler decides: the CPU group's minimum at once, GPU nodes on demand."""
    cluster_id = uuid.uuid4().hex
    token = secrets.token_hex(32)
    gcs_port = free_port()
    gcs_address = f"{node_ip()}:{gcs_port}"
    temp_dir = tempfile.mkdtemp(prefix="lithoseg-cluster-")
    config_path = Path(temp_dir) / "autoscaling.json"
    config_path.write_text(json.dumps(autoscaling_config(gcs_address, max_gpu_nodes, max_cpu_nodes, idle_timeout_s)))
    env = {
        **os.environ,
        **RAY_ENVIRONMENT,
        **(settings_env or {}),
        CLUSTER_TAG: cluster_id,
        # Ray's token authentication, with a token of this cluster's own (not ~/.ray/auth_token)
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        # Ray's fake multi-node provider and autoscaler v2, as ray.cluster_utils.AutoscalingCluster sets them
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "RAY_enable_autoscaler_v2": "1",
        "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
        "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
    }
    env.pop("RAY_ADDRESS", None)  # a driver's Ray address must not leak into the cluster's processes
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    command = [
        ray_bin, "start", "--head", "--block",
        f"--port={gcs_port}",
        f"--autoscaling-config={config_path}",
        f"--num-cpus={HEAD.ray_cpus}",
        "--object-store-memory=536870912",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]  # fmt: skip
    log_path = Path(temp_dir) / "head.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the head writes to it for its whole life
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster = LocalCluster(process, cluster_id, gcs_address, f"http://127.0.0.1:{dashboard_port}", temp_dir, log_path, token)
    deadline = time.monotonic() + wait_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"The Ray head exited with status {process.returncode}; see {log_path}:\n{log_path.read_text()[-3000:]}")
        try:
            cluster.serve_status()
            return cluster
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            cluster.stop()
            raise TimeoutError(f"The Ray dashboard did not answer within {wait_s:.0f} s; see {log_path}.")
        time.sleep(0.5)


def settings_environment(overrides: dict[str, Any]) -> dict[str, str]:
    """LITHOSEG_ variables for the cluster's processes (as KubeRay's `env` gives them to pods)."""
    return {f"LITHOSEG_{name.upper()}": str(value) for name, value in overrides.items()}


@contextmanager
def running_cluster(
    config: dict[str, Any] | None = None, settings: dict[str, Any] | None = None, wait_s: float = 600, **cluster_options: Any
) -> Iterator[LocalCluster]:
    """A started cluster with the application deployed and ready; stopped on exit."""
    overrides = dict(settings or {})
    resolved = Settings(**overrides)
    cluster = start_cluster(settings_environment(overrides), **cluster_options)
    try:
        cluster.deploy(copy.deepcopy(config) if config is not None else local_serve_config(resolved))
        wait_for_ok(f"http://{resolved.host}:{resolved.port}/ready", wait_s, poll_s=0.5)
        yield cluster
    finally:
        cluster.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """`make cluster`'s options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-gpu-nodes",
        type=int,
        default=3,
        help=f"most 'gpu' nodes the autoscaler may add here (the RayService allows {GPU.max_replicas})",
    )
    parser.add_argument("--max-cpu-nodes", type=int, default=2, help=f"most 'cpu' nodes (the RayService allows {CPU.max_replicas})")
    parser.add_argument("--idle-timeout-s", type=float, default=IDLE_TIMEOUT_S, help="an idle worker node is removed after this long")
    parser.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Start the local autoscaling cluster, deploy serve_config.yaml on it and serve until Ctrl-C."""
    args = parse_args(argv)
    began = time.monotonic()
    overrides: dict[str, Any] = {}
    if not Settings().api_key_list():
        overrides["api_keys"] = "dev-" + secrets.token_urlsafe(18)
    settings = Settings(**overrides)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    cuda = _cuda_available()
    print(
        f"starting a local Ray cluster: head (no replicas) + autoscaled groups gpu (0-{min(GPU.max_replicas, args.max_gpu_nodes)} nodes) "
        f"and cpu ({CPU.min_replicas}-{min(CPU.max_replicas, args.max_cpu_nodes)} nodes)",
        flush=True,
    )
    if not cuda:
        print(
            "no CUDA device here: the 'gpu' nodes advertise GPU: 1 to Ray, and "
            "the Segmenter replicas placed on them run the model on the CPU",
            flush=True,
        )
    cluster = start_cluster(
        settings_environment(overrides), args.max_gpu_nodes, args.max_cpu_nodes, args.idle_timeout_s, args.dashboard_port
    )
    try:
        print(f"dashboard: {cluster.dashboard_url} (Ray token authentication; token: {cluster.token})", flush=True)
        print(f"deploying {SERVE_CONFIG.name} through the dashboard's REST API...", flush=True)
        cluster.deploy(local_serve_config(settings))
        base = f"http://{settings.host}:{settings.port}"
        ready = threading.Thread(target=wait_for_ok, args=(f"{base}/ready", 900, 0.5), daemon=True)
        ready.start()
        while ready.is_alive() and not stopping.is_set():
            ready.join(0.5)
        if not stopping.is_set():
            print(f"\nlithoseg is ready at {base} after {time.monotonic() - began:.1f} s", flush=True)
            key = overrides.get("api_keys", "<one of LITHOSEG_API_KEYS>")
            if "api_keys" in overrides:
                print(f"development API key (LITHOSEG_API_KEYS was unset): {key}", flush=True)
            print(f'try: curl -X POST {base}/predict -H "api-key: {key}" -F "file=@core.jpg"', flush=True)
            print(
                f"nodes: RAY_AUTH_TOKEN={cluster.token} ray status --address "
                f"{cluster.gcs_address}    metrics: {base}/metrics    stop: Ctrl-C",
                flush=True,
            )
            stopping.wait()
    finally:
        print("stopping the cluster...", flush=True)
        cluster.stop()
    sys.exit(0)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


if __name__ == "__main__":
    main()
