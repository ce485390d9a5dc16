"""serve_config.yaml names the real builder and only deployments the graph has."""

from pathlib import Path

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
    assert {"LITHOSEG_API_KEYS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret["stringData"])
    kinds = {d["kind"] for d in documents["minio.yaml"]}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Job"} <= kinds
