"""The production shape on one machine: `serve_config.yaml` deployed through the dashboard's REST
API on a multi-node cluster that Ray's autoscaler (v2, fake multi-node provider) grows and shrinks.

One cluster for the module (about a minute to start); the tests run in order on it: a burst
scales the Segmenter and the gpu nodes out and back in; a gpu node killed under load loses no
job; a model rolled out under load fails no job and mixes no versions within a job.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

import requests  # noqa: E402

from bench.cluster_scaling import KEY, Burst, core_png, run_burst, submit_all, wait_all, wait_for  # noqa: E402
from deployments.cluster import GPU, LocalCluster, free_port, running_cluster, small_machine_config  # noqa: E402
from deployments.settings import DEFAULT_MODEL, Settings  # noqa: E402
from tests.deployments.test_service import run_reference_client  # noqa: E402

pytestmark = pytest.mark.slow
MAX_SEGMENTERS = 3


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str, dict[str, Any]]]:
    port = free_port()
    settings = {
        "api_keys": KEY,
        "port": port,
        "store_url": tmp_path_factory.mktemp("cluster-store").as_uri(),
        "rate_limit_per_minute": 0,
        "scale_search": False,  # two tiles a photo: the burst takes tens of seconds on 2 cores, not minutes
        "gate_threshold": 0,  # synthetic photos are all segmented
        "jobs_in_flight_per_replica": 2,
    }
    config = small_machine_config(Settings(**settings), max_segmenters=MAX_SEGMENTERS)
    with running_cluster(
        config, settings, max_gpu_nodes=MAX_SEGMENTERS, max_cpu_nodes=1, idle_timeout_s=10, dashboard_port=free_port()
    ) as cluster:
        yield cluster, f"http://127.0.0.1:{port}", config


@pytest.fixture(scope="module")
def burst(deployed: tuple[LocalCluster, str, dict[str, Any]]) -> Burst:
    cluster, base, _ = deployed
    return run_burst(cluster, base, jobs=30, settle_timeout=240, sustain_s=300)


def serving_version(base: str) -> str:
    """The model version /ready names; "" while it answers 503 (its 10 s look at the Segmenter can
    time out while a replica loads the new model on a loaded machine): not the new version yet."""
    response = requests.get(f"{base}/ready", timeout=30)
    return str(response.json()["model"]["version"]) if response.status_code == 200 else ""


def segmenter_healthy(cluster: Any) -> bool:
    """The Segmenter deployment has no config update under way (scaling up or down may be)."""
    app = cluster.serve_status().get("applications", {}).get("lithoseg", {})
    return app.get("deployments", {}).get("Segmenter", {}).get("status") in ("HEALTHY", "UPSCALING", "DOWNSCALING")


def started(base: str, job_id: str) -> bool:
    return requests.get(f"{base}/job/{job_id}", headers={"api-key": KEY}, timeout=30).json()["status"] != "queued"


def test_the_production_config_runs_on_separate_nodes(deployed):
    cluster, base, _ = deployed
    nodes = cluster.nodes()
    kinds = {n["node_type"] for n in nodes}
    assert {"head", "cpu", GPU.name} <= kinds
    head = next(n["node_id"] for n in nodes if n["node_type"] == "head")
    segmenter_nodes = {r["node_id"] for r in cluster.replicas("Segmenter")}
    gpu_nodes = {n["node_id"] for n in nodes if n["node_type"] == GPU.name}
    assert segmenter_nodes and segmenter_nodes <= gpu_nodes  # the model only on "gpu" nodes
    for name in ("Ingress", "JobRunner", "Decoder", "Tiler", "Compositor", "Segmenter"):
        assert head not in {r["node_id"] for r in cluster.replicas(name)}, f"{name} runs on the head"


def test_the_reference_client_runs_against_the_cluster(deployed, core_jpeg, tmp_path):
    _, base, _ = deployed
    run_reference_client(base, KEY, core_jpeg, tmp_path)


def test_a_backlog_scales_the_segmenter_and_gpu_nodes_out_then_back_in(burst: Burst):
    assert {job["status"] for job in burst.jobs.values()} == {"finished"}
    timings = burst.timings()
    assert timings["max_segmenter_replicas"] > 1, timings
    assert timings["max_gpu_nodes"] > 1, timings
    assert timings["first_added_replica_s"] is not None and timings["first_added_gpu_node_s"] is not None
    assert timings["scaled_in_s"] is not None, f"the Segmenter or the gpu nodes did not return to their minimum: {timings}"
    backlog = [s.get("backlog_tiles", 0) for s in burst.samples if "error" not in s]
    assert max(backlog) > 0 and backlog[-1] == 0


def test_killing_the_node_of_a_segmenter_mid_load_loses_no_job(deployed, burst):
    cluster, base, _ = deployed
    ids = submit_all(base, [core_png(1000 + i) for i in range(16)])
    wait_for(lambda: any(started(base, job_id) for job_id in ids[:2]), 120, "a job starting")
    victim = cluster.replicas("Segmenter")[0]["node_id"]
    assert cluster.kill_node(victim) > 0
    jobs = wait_all(base, ids, timeout=900)
    assert {job["status"] for job in jobs.values()} == {"finished"}, [j["error"] for j in jobs.values() if j["status"] != "finished"]
    # capacity is back: a Segmenter replica runs on a live gpu node that is not the killed one
    wait_for(lambda: any(r["node_id"] != victim for r in cluster.replicas("Segmenter")), 300, "a replacement Segmenter")
    # and the cluster has declared the killed node dead (after its missed health checks)
    wait_for(lambda: victim not in {n["node_id"] for n in cluster.nodes()}, 120, "the killed node declared dead")


def test_a_rollout_under_load_fails_no_job_and_mixes_no_versions(deployed, burst, tmp_path: Path):
    cluster, base, config = deployed
    rolled = tmp_path / "model-rolled"
    shutil.copytree(DEFAULT_MODEL, rolled)
    model_config = json.loads((rolled / "config.json").read_text())
    old_version, new_version = model_config["version"], f"{model_config['version']}-rollout"
    model_config["version"] = new_version
    (rolled / "config.json").write_text(json.dumps(model_config))
    ids = submit_all(base, [core_png(2000 + i) for i in range(14)])
    wait_for(lambda: cluster.sample(base).get("tiles_completed", 0) > 0, 120, "the first tiles")
    new_config = json.loads(json.dumps(config))
    segmenter = next(d for d in new_config["applications"][0]["deployments"] if d["name"] == "Segmenter")
    segmenter["user_config"] = {**segmenter["user_config"], "model": str(rolled)}
    cluster.deploy(new_config)
    # applied in place by each replica's reconfigure: wait until every answer (from any replica) is the new one
    wait_for(lambda: all(serving_version(base) == new_version for _ in range(6)), 300, "the rollout")
    # and Serve says every replica has applied it (an answer or six can come from updated replicas
    # while another still serves the old model to a job's runner)
    wait_for(lambda: segmenter_healthy(cluster), 300, "the Segmenter's update to finish")
    more = submit_all(base, [core_png(3000 + i) for i in range(6)])
    jobs = wait_all(base, ids + more, timeout=900)
    assert {job["status"] for job in jobs.values()} == {"finished"}, [j["error"] for j in jobs.values() if j["status"] != "finished"]
    versions = []
    for job_id in ids + more:  # in submission order
        model = jobs[job_id]["result"]["model"]
        assert model["tile_versions"] == [model["version"]], model  # every tile of a job from one model
        versions.append(model["version"])
    assert set(versions) <= {old_version, new_version}
    assert versions[-len(more) :] == [new_version] * len(more)  # jobs submitted after the rollout: the new model
    assert versions[0] == old_version  # the first job had started before it
