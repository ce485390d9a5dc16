"""Write k8s/rayservice.yaml from serve_config.yaml, so the cluster runs exactly the Serve config
the repository tests (`tests/deployments/test_config_files.py` checks they agree).

    python -m scripts.render_rayservice
"""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments.ray_environment import RAY_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "registry.example.com/lithoseg:0.1.0"
ENV = [
    {"name": "LITHOSEG_STORE_URL", "value": "s3://lithoseg/prod"},
    {"name": "LITHOSEG_S3_ENDPOINT_URL", "value": "http://minio.lithoseg.svc:9000"},
    {"name": "LITHOSEG_MODEL", "value": "/app/models/lithoseg-default"},
    *({"name": name, "value": value} for name, value in RAY_ENVIRONMENT.items()),
]
HEADER = """\
# KubeRay RayService for lithoseg, rendered from serve_config.yaml by scripts/render_rayservice.py
# (edit serve_config.yaml, then re-render). Needs the KubeRay operator (ray.io/v1), the NVIDIA
# device plugin on GPU nodes, the lithoseg Secret (secret.example.yaml) and MinIO (minio.yaml).
#   kubectl -n lithoseg apply -f k8s/rayservice.yaml
# A change of serveConfigV2 (e.g. a new LITHOSEG_MODEL s3:// checkpoint, or batching knobs) is
# rolled out in place; a change of rayClusterConfig makes KubeRay bring up a new cluster and switch
# traffic once its Serve app is ready. Job state lives in MinIO, so it survives both.
# HTTP: KubeRay's Service lithoseg-serve-svc (port 8000) reaches the Serve proxies; put your
# ingress or load balancer (TLS, body limit >= LITHOSEG_MAX_UPLOAD_BYTES) in front of it.
"""


def container(name: str, resources: dict[str, object], ports: bool) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": name,
        "image": IMAGE,
        "envFrom": [{"secretRef": {"name": "lithoseg"}}],
        "env": ENV,
        "resources": resources,
    }
    if ports:
        spec["ports"] = [
            {"containerPort": 6379, "name": "gcs"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            {"containerPort": 8000, "name": "serve"},
        ]
    return spec


def render() -> dict[str, object]:
    serve_config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "lithoseg", "namespace": "lithoseg"},
        "spec": {
            "serveConfigV2": yaml.dump(serve_config, Dumper=_Dumper, sort_keys=False, width=120),
            "rayClusterConfig": {
                "rayVersion": "2.60.0",
                "enableInTreeAutoscaling": True,
                "headGroupSpec": {
                    # the head runs the light deployments and the job tracker, no model
                    "rayStartParams": {"num-cpus": "4", "dashboard-host": "0.0.0.0"},
                    "template": {"spec": {"containers": [container("ray-head", {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}, True)]}},
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 8,
                        "rayStartParams": {},
                        "template": {
                            "spec": {
                                "containers": [
                                    container("ray-worker", {"requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}, "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}}, False)
                                ],
                                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                            }
                        },
                    },
                    {
                        "groupName": "cpu",
                        "replicas": 1,
                        "minReplicas": 1,
                        "maxReplicas": 8,
                        "rayStartParams": {},
                        "template": {"spec": {"containers": [container("ray-worker", {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}, False)]}},
                    },
                ],
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
