"""ResultStore on an S3-compatible bucket through boto3 (MinIO in a cluster, AWS S3, moto in tests)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from storage.base import ResultStore, check_key
from storage.errors import ObjectNotFound, StoreAccessDenied, StoreError, StoreUnavailable

# S3 error codes → our errors. Anything not listed is a StoreUnavailable: we cannot tell the
# caller more than "the store failed", and must never report it as "not found".
_ERRORS_BY_CODE: dict[str, type[StoreError]] = {
    "NoSuchKey": ObjectNotFound,
    "404": ObjectNotFound,
    "NotFound": ObjectNotFound,
    "AccessDenied": StoreAccessDenied,
    "403": StoreAccessDenied,
    "InvalidAccessKeyId": StoreAccessDenied,
    "SignatureDoesNotMatch": StoreAccessDenied,
    "NoSuchBucket": StoreUnavailable,
}


def translate(exc: Exception, action: str) -> StoreError:
    """A boto error as the store's own (not found, denied, unavailable)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        error_type = _ERRORS_BY_CODE.get(code, StoreUnavailable)
        return error_type(f"S3 {action} failed: {code or 'unknown error'}.")
    if isinstance(exc, EndpointConnectionError):
        return StoreUnavailable(f"S3 {action} failed: the endpoint cannot be reached.")
    return StoreUnavailable(f"S3 {action} failed: {type(exc).__name__}.")


class S3Store(ResultStore):
    """A result store in an S3 bucket under a prefix (AWS, MinIO or any S3-compatible server)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"put {key}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"get {key}") from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, f"delete {key}")
            if not isinstance(error, ObjectNotFound):
                raise error from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list {prefix}") from exc

    def ping(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, "head bucket")
            if isinstance(error, ObjectNotFound):  # HEAD has no body: a 404 here is the bucket
                error = StoreUnavailable(f"The bucket {self.bucket} does not exist.")
            raise error from exc

    def create_bucket(self) -> None:
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise translate(exc, "create bucket") from exc
