"""The two async S3 clients the storage backend could use, measured against SeaweedFS on
loopback: `obstore` (Rust's object_store, the one app/files/backends/s3.py uses) and
`aioboto3` (botocore on aiohttp; not a dependency: `pip install aioboto3` to compare).

Each client runs in a fresh process of its own, so its peak memory (VmHWM) is its own:
a 20 MB file uploaded from disk and downloaded back to disk in 1 MB pieces, then 200 files of
4 KB uploaded and downloaded 16 at a time, as a service would. Run by bench/bench_storage.py;
alone:

    .venv/bin/python -m bench.storage_clients ENDPOINT BUCKET CLIENT
"""

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.seaweedfs import ACCESS_KEY, REGION, SECRET_KEY

LARGE_BYTES = 20 * 1024 * 1024
SMALL_FILES = 200
SMALL_BYTES = 4096
AT_ONCE = 16
PIECE = 1024 * 1024


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def bounded(calls: list[Any]) -> None:
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(call: Any) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(call) for call in calls))


async def with_obstore(endpoint: str, bucket: str, large: Path, out: Path) -> dict[str, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region=REGION,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        allow_http=True,
        virtual_hosted_style_request=False,
    )
    figures = {"imported_mb": rss_mb()}
    started = time.perf_counter()
    with large.open("rb") as source:
        # As app/files/backends/s3.py sends a staged upload: 1 MB pieces, 2 parts at once.
        pieces = iter(lambda: source.read(PIECE), b"")
        await obstore.put_async(store, "obstore/large", pieces, max_concurrency=2)
    figures["large_up_s"] = time.perf_counter() - started
    started = time.perf_counter()
    result = await obstore.get_async(store, "obstore/large")
    with out.open("wb") as target:
        async for piece in result.stream(min_chunk_size=PIECE):
            target.write(piece)
    figures["large_down_s"] = time.perf_counter() - started
    body = os.urandom(SMALL_BYTES)

    def put(index: int) -> Any:
        return lambda: obstore.put_async(store, f"obstore/small/{index}", body)

    async def get_one(index: int) -> None:
        await (await obstore.get_async(store, f"obstore/small/{index}")).bytes_async()

    started = time.perf_counter()
    await bounded([put(index) for index in range(SMALL_FILES)])
    figures["small_up_s"] = time.perf_counter() - started
    started = time.perf_counter()
    await bounded([lambda index=index: get_one(index) for index in range(SMALL_FILES)])
    figures["small_down_s"] = time.perf_counter() - started
    return figures


async def with_aioboto3(endpoint: str, bucket: str, large: Path, out: Path) -> dict[str, float]:
    import aioboto3  # type: ignore[import-not-found]  # not a dependency: compared only

    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        figures = {"imported_mb": rss_mb()}
        started = time.perf_counter()
        with large.open("rb") as source:
            await client.upload_fileobj(source, bucket, "aioboto3/large")
        figures["large_up_s"] = time.perf_counter() - started
        started = time.perf_counter()
        response = await client.get_object(Bucket=bucket, Key="aioboto3/large")
        with out.open("wb") as target:
            async for piece in response["Body"].iter_chunks(PIECE):
                target.write(piece)
        figures["large_down_s"] = time.perf_counter() - started
        body = os.urandom(SMALL_BYTES)

        async def put_one(index: int) -> None:
            await client.put_object(Bucket=bucket, Key=f"aioboto3/small/{index}", Body=body)

        async def get_one(index: int) -> None:
            got = await client.get_object(Bucket=bucket, Key=f"aioboto3/small/{index}")
            await got["Body"].read()

        started = time.perf_counter()
        await bounded([lambda index=index: put_one(index) for index in range(SMALL_FILES)])
        figures["small_up_s"] = time.perf_counter() - started
        started = time.perf_counter()
        await bounded([lambda index=index: get_one(index) for index in range(SMALL_FILES)])
        figures["small_down_s"] = time.perf_counter() - started
        return figures


def main() -> None:
    endpoint, bucket, client = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="ajc-bench-s3-") as folder:
        large, out = Path(folder) / "large", Path(folder) / "out"
        with large.open("wb") as target:
            for _ in range(LARGE_BYTES // PIECE):
                target.write(os.urandom(PIECE))
        measure = with_obstore if client == "obstore" else with_aioboto3
        figures = asyncio.run(measure(endpoint, bucket, large, out))
        figures["peak_mb"] = peak_rss_mb()  # before the check below reads both files
        if out.read_bytes() != large.read_bytes():
            raise SystemExit(f"{client}: the 20 MB file came back different")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
