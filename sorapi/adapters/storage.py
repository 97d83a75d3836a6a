"""Object storage through the `minio` client: any S3 (SeaweedFS embedded, MinIO, AWS...)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from minio import Minio

from sorapi.adapters.settings import Settings


def make_client(settings: Settings, *, public: bool = False) -> Minio:
    """A client for uploads/deletes, or (`public=True`) one that signs URLs for clients' host."""
    endpoint = settings.s3_public_endpoint if public and settings.s3_public_endpoint else settings.s3_endpoint
    return Minio(
        endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def ensure_bucket(client: Minio, bucket: str) -> None:
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)


def task_prefix(task_id: str) -> str:
    return f"tasks/{task_id}/"


def object_key(task_id: str, filename: str) -> str:
    return task_prefix(task_id) + filename


def put_file(client: Minio, bucket: str, key: str, path: Path, content_type: str) -> None:
    client.fput_object(bucket, key, str(path), content_type=content_type)


def read_object(client: Minio, bucket: str, key: str) -> bytes:
    """The whole object `key`, its connection given back to the pool."""
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def presign(client: Minio, bucket: str, key: str, ttl_s: int) -> str:
    return client.presigned_get_object(bucket, key, expires=timedelta(seconds=ttl_s))


def delete_prefix(client: Minio, bucket: str, prefix: str) -> int:
    """Delete every object under a prefix; returns how many were removed."""
    keys = [o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True)]
    for key in keys:
        client.remove_object(bucket, key)
    return len(keys)
