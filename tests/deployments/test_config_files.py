"""serve_config.yaml names the real builder and only deployments the graph has."""

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app
from deployments.segmenter import CONCURRENT_BATCHES, SegmenterConfig

ROOT = Path(__file__).resolve().parents[2]


def test_serve_config_is_a_valid_serve_schema_for_our_graph():
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    schema = ServeDeploySchema(**raw)
    (app,) = schema.applications
    assert app.import_path == "deployments.app:build_app"
    graph = {"Ingress", "JobRunner", "Decoder", "Tiler", "Segmenter", "Compositor"}
    assert {d.name for d in app.deployments} <= graph
    segmenter = next(d for d in app.deployments if d.name == "Segmenter")
    # every concurrent batch must be able to fill up: a batch never exceeds max_ongoing_requests
    assert segmenter.max_ongoing_requests >= segmenter.user_config["max_batch_size"] * CONCURRENT_BATCHES
    SegmenterConfig(**segmenter.user_config)  # every knob is one the Segmenter knows
    assert build_app(app.args) is not None


def test_k8s_manifests_parse_and_run_the_tested_serve_config():
    from deployments.settings import Settings
    from scripts.render_rayservice import render

    documents = {p.name: list(yaml.safe_load_all(p.read_text())) for p in (ROOT / "k8s").glob("*.yaml")}
    assert {"rayservice.yaml", "minio.yaml", "secret.example.yaml"} <= set(documents)
    (service,) = documents["rayservice.yaml"]
    assert service == render(), "k8s/rayservice.yaml is stale: run python -m scripts.render_rayservice"
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    assert any(c["resources"]["limits"].get("nvidia.com/gpu") for g in groups for c in g["template"]["spec"]["containers"])
    known = {f"LITHOSEG_{name.upper()}" for name in Settings.model_fields}
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            names = {e["name"] for e in container["env"] if e["name"].startswith("LITHOSEG_")}
            assert names <= known, names - known
            assert {"secretRef": {"name": "lithoseg"}} in container["envFrom"]
    (secret,) = documents["secret.example.yaml"]
    assert {"LITHOSEG_API_KEYS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "REDIS_PASSWORD"} <= set(secret["stringData"])
    assert {"Deployment", "Service", "PersistentVolumeClaim"} <= {d["kind"] for d in documents["redis.yaml"]}
    kinds = {d["kind"] for d in documents["minio.yaml"]}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Job"} <= kinds


def test_rayservice_validates_against_the_kuberay_crd_schema():
    """The RayService as KubeRay's CRD (v1) accepts it; a misplaced field would fail here."""
    import json

    import jsonschema

    schema = json.loads((ROOT / "k8s" / "schemas" / "rayservice.ray.io-v1.json").read_text())
    (service,) = yaml.safe_load_all((ROOT / "k8s" / "rayservice.yaml").read_text())
    jsonschema.validate(service, schema)
    wrong = {
        **service,
        "spec": {**service["spec"], "rayClusterConfig": {**service["spec"]["rayClusterConfig"], "autoscalerOptions": {"version": "v3"}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


def test_rayservice_is_production_grade():
    """GCS fault tolerance on Redis, autoscaler v2 with an idle timeout, a head without replicas,
    the Serve service without the head, an upgrade strategy, and the GPU group scaled from 0."""
    from deployments.cluster import GPU, IDLE_TIMEOUT_S

    (service,) = yaml.safe_load_all((ROOT / "k8s" / "rayservice.yaml").read_text())
    spec = service["spec"]
    cluster = spec["rayClusterConfig"]
    assert spec["excludeHeadPodFromServeSvc"] is True and spec["upgradeStrategy"]["type"] == "NewCluster"
    assert cluster["gcsFaultToleranceOptions"]["redisAddress"].endswith(":6379")
    assert cluster["autoscalerOptions"] == {"version": "v2", "idleTimeoutSeconds": IDLE_TIMEOUT_S, "upscalingMode": "Default"}
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert groups["gpu"]["minReplicas"] == 0 and groups["gpu"]["rayStartParams"]["num-gpus"] == "1"
    assert groups["gpu"]["maxReplicas"] == GPU.max_replicas
    segmenter = next(d for d in yaml.safe_load(spec["serveConfigV2"])["applications"][0]["deployments"] if d["name"] == "Segmenter")
    assert segmenter["ray_actor_options"]["num_gpus"] == 1
    assert segmenter["autoscaling_config"]["policy"]["policy_function"] == "deployments.autoscaling:BacklogPolicy"
    assert segmenter["autoscaling_config"]["max_replicas"] <= GPU.max_replicas  # each replica has a GPU node to go to


def test_local_cluster_runs_the_rayservice_groups():
    """`make cluster`'s autoscaler config is made from the same groups as the RayService."""
    from deployments.cluster import autoscaling_config

    (service,) = yaml.safe_load_all((ROOT / "k8s" / "rayservice.yaml").read_text())
    config = autoscaling_config("127.0.0.1:1", max_gpu_nodes=99, max_cpu_nodes=99, idle_timeout_s=60)
    types = config["available_node_types"]
    assert types["ray.head.default"]["resources"] == {
        "CPU": int(service["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"])
    }
    for group in service["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        local = types[group["groupName"]]
        params = group["rayStartParams"]
        assert local["resources"]["CPU"] == int(params["num-cpus"])
        assert local["resources"].get("GPU", 0) == int(params.get("num-gpus", 0))
        assert (local["min_workers"], local["max_workers"]) == (group["minReplicas"], group["maxReplicas"])
    assert config["idle_timeout_minutes"] == 1.0
