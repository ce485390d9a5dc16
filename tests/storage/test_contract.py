"""One behavioural suite for every ResultStore backend: the local directory and S3 (a real
S3-protocol server, moto, running as a separate process on loopback)."""

import threading
from pathlib import Path

import pytest

from storage import ObjectNotFound, StoreAccessDenied, StoreUnavailable, open_store
from storage.errors import InvalidKey
from storage.s3 import translate


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(tmp_path.as_uri())
    endpoint = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/some/prefix", endpoint)


def test_put_get_roundtrip(store):
    store.put("jobs/a/upload", b"\x00\x01binary\xff")
    assert store.get("jobs/a/upload") == b"\x00\x01binary\xff"


def test_put_replaces(store):
    store.put("k", b"one")
    store.put("k", b"two")
    assert store.get("k") == b"two"


def test_missing_key_is_not_found(store):
    with pytest.raises(ObjectNotFound):
        store.get("jobs/none/record.json")


def test_delete_is_idempotent(store):
    store.put("jobs/x/a", b"1")
    store.delete("jobs/x/a")
    store.delete("jobs/x/a")
    with pytest.raises(ObjectNotFound):
        store.get("jobs/x/a")


def test_list_by_prefix_in_order(store):
    for key in ["jobs/b/record.json", "jobs/a/record.json", "jobs/a/upload", "other/z"]:
        store.put(key, b"x")
    assert list(store.list("jobs/")) == ["jobs/a/record.json", "jobs/a/upload", "jobs/b/record.json"]
    assert list(store.list("jobs/a/")) == ["jobs/a/record.json", "jobs/a/upload"]
    assert store.delete_prefix("jobs/a/") == 2
    assert list(store.list("jobs/")) == ["jobs/b/record.json"]


def test_json_helpers(store):
    store.put_json("r.json", {"a": [1, 2], "b": None})
    assert store.get_json("r.json") == {"a": [1, 2], "b": None}


def test_ping(store):
    store.ping()


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b"])
def test_keys_cannot_escape(store, key):
    with pytest.raises(InvalidKey):
        store.put(key, b"x")


def test_concurrent_writers(store):
    def write(i):
        store.put(f"c/{i}", str(i).encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(store.get(k)) for k in store.list("c/")) == list(range(16))


def test_s3_missing_bucket_is_unavailable_not_not_found(s3_server):
    store = open_store("s3://no-such-bucket-here/x", s3_server)
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.get("anything")


def test_s3_errors_translate_by_code():
    from botocore.exceptions import ClientError

    def client_error(code):
        return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetObject")

    assert isinstance(translate(client_error("AccessDenied"), "get"), StoreAccessDenied)
    assert isinstance(translate(client_error("NoSuchKey"), "get"), ObjectNotFound)
    assert isinstance(translate(client_error("InternalError"), "get"), StoreUnavailable)


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="Unsupported store URL"):
        open_store("ftp://host/path")


def test_a_checkpoint_on_s3_is_fetched_with_its_gate_bank_and_engine_checks_when_it_has_them(s3_server, s3_bucket, tmp_path):
    from storage.factory import fetch_checkpoint

    store = open_store(f"s3://{s3_bucket}/models/mine", s3_server)
    store.put("config.json", b'{"name": "mine"}')
    store.put("model.safetensors", b"weights")
    without = fetch_checkpoint(f"s3://{s3_bucket}/models/mine", s3_server, tmp_path / "without")
    assert sorted(p.name for p in without.iterdir()) == ["config.json", "model.safetensors"]

    store.put("gate.npz", b"bank")
    fetched = fetch_checkpoint(f"s3://{s3_bucket}/models/mine", s3_server, tmp_path / "with")
    assert (fetched / "gate.npz").read_bytes() == b"bank" and (fetched / "config.json").read_bytes() == b'{"name": "mine"}'
    store.put("engines/openvino-bf16.checks.json", b'{"accepted": true}')  # what lets `auto` use bf16 on this model
    checked = fetch_checkpoint(f"s3://{s3_bucket}/models/mine", s3_server, tmp_path / "checked")
    assert (checked / "engines" / "openvino-bf16.checks.json").read_bytes() == b'{"accepted": true}'
    assert not (checked / "engines" / "onnxruntime-int8.checks.json").exists()

    with pytest.raises(ObjectNotFound):  # a prefix with no checkpoint is not silently an empty one
        fetch_checkpoint(f"s3://{s3_bucket}/models/none", s3_server, tmp_path / "none")
    assert fetch_checkpoint("models/local") == Path("models/local")  # a path is used where it lies
