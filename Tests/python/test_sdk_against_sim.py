"""The official Dream Engines Python client (`pip install dream-engine`) against `dreamd sim`.

Proof that the simulator speaks the real protocol: the SDK lists the models, gets
`dreamdojo-2b-gr1`, and runs one rollout (multipart `start_frame`/`actions`/`params`, the JSON
envelope, the video download). Starts nothing: `scripts/sdk-check.sh` starts the simulator and sets
DREAM_SIM_URL (and DREAM_BASE_URL) to it.
"""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest

import dream

SIM_URL = os.environ.get("DREAM_SIM_URL") or os.environ.get("DREAM_BASE_URL")
SLUG = "dreamdojo-2b-gr1"

pytestmark = pytest.mark.skipif(not SIM_URL, reason="DREAM_SIM_URL is not set: run scripts/sdk-check.sh")


def png_rgb(width: int = 640, height: int = 480) -> bytes:
    """A valid 8-bit RGB PNG made with zlib and struct only (a gradient)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes((x * 255 // (width - 1), y * 255 // (height - 1), 128))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def client() -> dream.Client:
    return dream.Client(base_url=SIM_URL, api_key=os.environ.get("DREAM_API_KEY", "dre_sim_test"))


def test_healthz_and_status(client: dream.Client) -> None:
    assert isinstance(client.healthz(), dict)
    assert client.status()["model"] == SLUG


def test_list_models(client: dream.Client) -> None:
    handles = client.models.list()
    slugs = [h.slug for h in handles]
    assert SLUG in slugs
    active = [h for h in handles if h.active]
    assert [h.slug for h in active] == [SLUG]
    assert active[0].spec.price_per_frame_usd == pytest.approx(0.0005)


def test_get_model(client: dream.Client) -> None:
    model = client.models.get(SLUG)
    assert model.slug == SLUG
    assert model.active
    assert model.action_dim == 384
    assert model.chunk_size == 12
    assert model.resolution == (480, 640)
    with pytest.raises(dream.ModelNotFoundError):
        client.models.get("no-such-model")


def test_one_rollout(client: dream.Client) -> None:
    model = client.models.get(SLUG)
    actions = (0.05 * np.sin(np.linspace(0, 6.28, 48 * 384))).reshape(48, 384).astype(np.float32)
    rollout = model.predict(start_frame=png_rgb(), actions=actions, seed=7, idempotency_key="sdk-check-1")
    assert rollout.id.startswith("rollout_")
    assert rollout.model == SLUG
    assert rollout.frames == 49
    assert rollout.resolution == (480, 640)
    assert rollout.seed == 7
    assert rollout.cost_usd == pytest.approx(49 * 0.0005)
    video = rollout.mp4_bytes()
    assert video[4:8] == b"ftyp" and b"moov" in video and b"mdat" in video
    # The same key and payload replay the stored rollout (no second charge).
    again = model.predict(start_frame=png_rgb(), actions=actions, seed=7, idempotency_key="sdk-check-1")
    assert again.id == rollout.id


def test_predict_batch_and_legacy_predict(client: dream.Client) -> None:
    frame = png_rgb()
    blobs = []
    for k in range(2):
        buffer = io.BytesIO()
        np.save(buffer, np.full((12, 384), k, dtype=np.float32), allow_pickle=False)
        blobs.append(buffer.getvalue())
    response = client._predict_batch_raw(frame_bytes=frame, actions_bytes_list=blobs, seed=1)
    assert response.headers["X-DreamEngine-Batch-Size"] == "2"
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        assert sorted(m.name for m in archive.getmembers()) == ["rollout_000.mp4", "rollout_001.mp4"]
    legacy = client._predict_raw(frame_bytes=frame, actions_bytes=blobs[0], seed=0)
    assert legacy.headers["X-DreamEngine-Frames"] == "13"
    assert legacy.content[4:8] == b"ftyp"


def test_errors_are_typed(client: dream.Client) -> None:
    bad = io.BytesIO()
    np.save(bad, np.zeros((13, 384), dtype=np.float32), allow_pickle=False)
    with pytest.raises(dream.ValidationError):
        client.predict(frame_bytes=png_rgb(), actions_bytes=bad.getvalue())
