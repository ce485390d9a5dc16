"""Write k8s/rayservice.yaml from serve_config.yaml and the node groups of deployments/cluster.py,
so the cluster runs exactly the Serve config and the groups the repository tests
(`tests/deployments/test_config_files.py` checks they agree).

    python -m scripts.render_rayservice
"""

from __future__ import annotations

from pathlib import Path

import yaml

import pipelines
from deployments.cluster import HEAD, IDLE_TIMEOUT_S, WORKER_GROUPS, NodeGroup
from deployments.ray_environment import RAY_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
IMAGE = f"registry.example.com/lithoseg:{pipelines.__version__}"
RAY_VERSION = "2.60.0"
ENV = [
    {"name": "LITHOSEG_STORE_URL", "value": "s3://lithoseg/prod"},
    {"name": "LITHOSEG_S3_ENDPOINT_URL", "value": "http://minio.lithoseg.svc:9000"},
    {"name": "LITHOSEG_MODEL", "value": "/app/models/lithoseg-default"},
    *({"name": name, "value": value} for name, value in RAY_ENVIRONMENT.items()),
]
HEADER = """\
# KubeRay RayService for lithoseg, rendered from serve_config.yaml by scripts/render_rayservice.py
# (edit serve_config.yaml, then re-render). Needs the KubeRay operator (ray.io/v1), the NVIDIA
# device plugin on GPU nodes, the lithoseg Secret (secret.example.yaml), MinIO (minio.yaml) and
# Redis for GCS fault tolerance (redis.yaml). Node groups come from deployments/cluster.py, the
# same ones `make cluster` runs locally.
#   kubectl -n lithoseg apply -f k8s/rayservice.yaml
# A change of serveConfigV2 (e.g. a new LITHOSEG_MODEL s3:// checkpoint, or batching knobs) is
# rolled out in place; a change of rayClusterConfig makes KubeRay bring up a new cluster and switch
# traffic once its Serve app is ready. Job state lives in MinIO, so it survives both.
# HTTP: KubeRay's Service lithoseg-serve-svc (port 8000) reaches the Serve proxies; put your
# ingress or load balancer (TLS, body limit >= LITHOSEG_MAX_UPLOAD_BYTES) in front of it.
"""


def container(name: str, group: NodeGroup, ports: bool) -> dict[str, object]:
    quantities: dict[str, str] = {"cpu": group.cpu, "memory": group.memory}
    if group.gpus:
        quantities["nvidia.com/gpu"] = str(group.gpus)
    spec: dict[str, object] = {
        "name": name,
        "image": IMAGE,
        "envFrom": [{"secretRef": {"name": "lithoseg"}}],
        "env": ENV,
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
    }
    if ports:
        spec["ports"] = [
            {"containerPort": 6379, "name": "gcs"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            {"containerPort": 8000, "name": "serve"},
        ]
    return spec


def worker_group(group: NodeGroup) -> dict[str, object]:
    pod: dict[str, object] = {"containers": [container("ray-worker", group, False)]}
    if group.gpus:
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "groupName": group.name,
        "replicas": group.min_replicas,
        "minReplicas": group.min_replicas,
        "maxReplicas": group.max_replicas,
        "rayStartParams": group.rayStartParams(),
        "template": {"spec": pod},
    }


def render() -> dict[str, object]:
    serve_config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "lithoseg", "namespace": "lithoseg"},
        "spec": {
            # a new RayCluster comes up beside the old one and takes the traffic once its Serve
            # app is ready (rayClusterConfig changes); serveConfigV2 changes apply in place
            "upgradeStrategy": {"type": "NewCluster"},
            # the head runs no replica of the application, so the Service never routes to it
            "excludeHeadPodFromServeSvc": True,
            "serveConfigV2": yaml.dump(serve_config, Dumper=_Dumper, sort_keys=False, width=120),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"version": "v2", "idleTimeoutSeconds": IDLE_TIMEOUT_S, "upscalingMode": "Default"},
                # GCS fault tolerance: the cluster's metadata (actors, placement, the detached job
                # tracker's registration) lives in Redis, so a restarted head rejoins the running
                # workers instead of the whole cluster restarting (k8s/redis.yaml)
                "gcsFaultToleranceOptions": {
                    "redisAddress": "redis.lithoseg.svc:6379",
                    "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "lithoseg", "key": "REDIS_PASSWORD"}}},
                },
                "headGroupSpec": {
                    # no replica and no model on the head (num-cpus 0): Serve's controller and
                    # proxy, the dashboard, the autoscaler and the job tracker only
                    "rayStartParams": HEAD.rayStartParams(),
                    "template": {"spec": {"containers": [container("ray-head", HEAD, True)]}},
                },
                "workerGroupSpecs": [worker_group(group) for group in WORKER_GROUPS],
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (serveConfigV2 stays readable), no anchors."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _literal(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _literal)


def main() -> None:
    text = HEADER + yaml.dump(render(), Dumper=_Dumper, sort_keys=False, width=120)
    (ROOT / "k8s" / "rayservice.yaml").write_text(text)
    print("wrote k8s/rayservice.yaml")


if __name__ == "__main__":
    main()
