"""End to end on the S3 backend: job records, uploads, results and the model itself live in a
bucket of a real S3-protocol server (moto) on loopback. The model is a tiny one trained here for a
few steps, uploaded, and served through an s3:// LITHOSEG_MODEL."""

from __future__ import annotations

import io
import json

import boto3
import numpy as np
import pytest
from PIL import Image

from deployments.jobs import mask_key, overlay_key, record_key, upload_key
from pipelines.tiling import plan_tiles
from tests.conftest import encode, train_briefly
from tests.service import KEY_A, run_service
from training.synthetic import generate_sample

pytestmark = pytest.mark.slow

TINY_MODEL = {
    "name": "tiny-test-model",
    "version": "t1",
    "architecture_kwargs": {"decoder_channels": [32, 16, 16, 8, 8]},
    "tile_size": 128,
    "tile_overlap": 32,
    "max_short_side": 200,  # photos larger than this are segmented scaled down
    "scales": [1.0, 0.7],  # and also at 0.7 of that; the more confident wins
}


@pytest.fixture(scope="module")
def s3_service(serve_port, s3_server, tmp_path_factory):
    bucket = "lithoseg-e2e"
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket=bucket)
    run_dir = tmp_path_factory.mktemp("tiny")
    train_briefly(run_dir, "--pretrained", "none", "--model-json", json.dumps(TINY_MODEL), steps=2)
    for name in ("config.json", "model.safetensors"):
        client.upload_file(str(run_dir / "checkpoint" / name), bucket, f"models/tiny/{name}")
    with run_service(
        serve_port,
        app_name="lithoseg-e2e-s3",
        store_url=f"s3://{bucket}/service",
        s3_endpoint_url=s3_server,
        model=f"s3://{bucket}/models/tiny",
    ) as service:
        yield service, client, bucket


def test_reference_flow_on_s3_with_a_model_from_s3(s3_service):
    service, client, bucket = s3_service
    image = generate_sample(2, height=300, width=260).image
    job_id = service.submit(encode(image)).json()["job_id"]
    info = service.wait(job_id)
    assert info["status"] == "finished", info
    assert info["result"]["model"] == {"name": "tiny-test-model", "version": "t1", "tile_versions": ["t1"]}
    overlay = Image.open(io.BytesIO(service.job(job_id, form="png").content))
    mask = Image.open(io.BytesIO(service.job(job_id, form="mask").content))
    assert overlay.size == mask.size == (image.shape[1], image.shape[0])  # the photo's size, though
    # tiled at the working size (shorter side 260 -> 200 px) and at 0.7 of it
    assert info["total_tiles"] == len(plan_tiles(231, 200, 128, 32, 32)) + len(plan_tiles(162, 140, 128, 32, 32))
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="service/")["Contents"]}
    attempt = info["attempt"]
    assert {f"service/{record_key(job_id)}", f"service/{overlay_key(job_id, attempt)}", f"service/{mask_key(job_id, attempt)}"} <= keys
    assert f"service/{upload_key(job_id)}" not in keys  # uploads are dropped once a job is done
    stored = json.loads(client.get_object(Bucket=bucket, Key=f"service/{record_key(job_id)}")["Body"].read())
    assert stored["status"] == "finished" and KEY_A not in json.dumps(stored)


def test_jobs_survive_a_redeploy_on_s3(s3_service, serve_port):
    """Records live in the bucket, so a new deployment (new tracker) still serves old jobs."""
    service, client, bucket = s3_service
    job_id = service.submit(encode(np.full((64, 64, 3), 128, np.uint8))).json()["job_id"]
    assert service.wait(job_id)["status"] == "finished"
    from ray import serve

    from deployments.local import undeploy

    undeploy(service.settings)
    assert serve.status().applications.get(service.settings.app_name) is None
    with run_service(
        serve_port,
        app_name="lithoseg-e2e-s3",
        store_url=service.settings.store_url,
        s3_endpoint_url=service.settings.s3_endpoint_url,
        model=service.settings.model,
    ) as again:
        assert again.job(job_id).json()["status"] == "finished"
        assert again.job(job_id, form="mask").headers["content-type"] == "image/png"
