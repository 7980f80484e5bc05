"""Storage roots: local folders and s3:// prefixes on a local S3-compatible server (moto)."""

from __future__ import annotations

import pickle

import pytest
from runtime_helpers import moto_s3

from facecolor.runtime.storage import (
    STORAGE_OPTIONS_ENV,
    StorageError,
    is_url,
    open_storage,
)


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on 127.0.0.1 with the AWS variables pointing at it; yields its URL."""
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_server, request):
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    name = "t-" + request.node.name.lower().replace("_", "-")[:40]
    fs.mkdir(name)
    yield name
    fs.rm(name, recursive=True)


def test_is_url():
    assert is_url("s3://b/p") and is_url("memory://x") and is_url("gs://b")
    assert not is_url("/tmp/x") and not is_url("file:///tmp/x") and not is_url("rel/dir")


def test_local_roundtrip_atomic_and_listing(tmp_path):
    store = open_storage(tmp_path / "root")
    store.makedirs()
    assert set(store.iter_files()) == set()
    store.write_bytes("a/b c/ü.jpg", b"xyz")
    store.write_bytes("top.png", b"12345")
    (tmp_path / "root" / ".hidden.tmp").write_bytes(b"partial")
    assert list(store.iter_files()) == ["a/b c/ü.jpg", "top.png"]
    assert store.read_bytes("a/b c/ü.jpg") == b"xyz"
    assert set(store.iter_files()) == {"a/b c/ü.jpg", "top.png"}
    # No temporary file is left next to the output.
    assert sorted(p.name for p in (tmp_path / "root" / "a" / "b c").iterdir()) == ["ü.jpg"]
    assert list(store.iter_files(exclude_prefix="a")) == ["top.png"]
    assert store.read_bytes("top.png", max_bytes=2) == b"123"  # one byte more than asked: too large


def test_relative_paths_cannot_escape(tmp_path):
    store = open_storage(tmp_path)
    for bad in ("../x.jpg", "a/../../x.jpg", "", "/"):
        with pytest.raises(StorageError):
            store.write_bytes(bad, b"")


def test_containment(tmp_path):
    outer, inner = open_storage(tmp_path), open_storage(tmp_path / "out")
    assert outer.contains(inner) and not inner.contains(outer)
    assert outer.relative_to_me(inner) == "out" and outer.relative_to_me(outer) is None


def test_missing_local_root_is_a_storage_error(tmp_path):
    with pytest.raises(StorageError, match="not a folder"):
        open_storage(tmp_path / "missing").check_readable_root()


def test_storage_options_env(monkeypatch, tmp_path):
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, '{"endpoint_url": "http://127.0.0.1:1"}')
    assert open_storage("s3://bucket/in").storage_options == {"endpoint_url": "http://127.0.0.1:1"}
    assert open_storage(tmp_path).storage_options == {}  # a local folder takes none
    monkeypatch.setenv(STORAGE_OPTIONS_ENV, "not json")
    with pytest.raises(StorageError, match="JSON"):
        open_storage("s3://bucket/in")


def test_unknown_protocol_says_what_to_install():
    with pytest.raises(StorageError, match="pip install"):
        open_storage("nosuchproto://bucket/x")


def test_s3_roundtrip_listing_and_pickle(bucket):
    store = open_storage(f"s3://{bucket}/in")
    store.write_bytes("x/1.jpg", b"one")
    store.write_bytes("x/2 ü.png", b"two!")
    store.write_bytes("out/skip.jpg", b"no")
    store.check_readable_root()
    assert list(store.iter_files(exclude_prefix="out")) == ["x/1.jpg", "x/2 ü.png"]
    assert store.read_bytes("x/2 ü.png", max_bytes=1) == b"tw" and store.read_bytes("x/1.jpg", max_bytes=9) == b"one"
    assert set(store.iter_files()) == {"x/1.jpg", "x/2 ü.png", "out/skip.jpg"}
    assert store.url("x/1.jpg") == f"s3://{bucket}/in/x/1.jpg"
    clone = pickle.loads(pickle.dumps(store))
    assert clone.read_bytes("x/2 ü.png") == b"two!" and "x/1.jpg" in set(clone.iter_files())
    assert open_storage(f"s3://{bucket}/in").contains(open_storage(f"s3://{bucket}/in/out"))


def test_s3_missing_prefix_and_object(bucket):
    store = open_storage(f"s3://{bucket}/empty")
    assert set(store.iter_files()) == set()
    with pytest.raises(StorageError, match="no such bucket or prefix"):
        store.check_readable_root()
    with pytest.raises(FileNotFoundError):
        store.read_bytes("nothing.jpg")


def test_s3_explicit_options_override_env(bucket, s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    store = open_storage(f"s3://{bucket}/opts", {"endpoint_url": s3_server, "skip_instance_cache": True})
    store.write_bytes("a.jpg", b"a")
    assert store.read_bytes("a.jpg") == b"a"
