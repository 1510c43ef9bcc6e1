"""A Tortoise render re-rolls a take whose audio misses words (verify defaults to reroll for Tortoise).

The real Tortoise code runs at tiny size (random weights, so it speaks no words); the audio each call
returns is then replaced by a Piper stand-in of the same text, cut on the first take: what is heard
is speech, and the re-roll goes through Tortoise's own batch path and seeds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tortoise")
pytest.importorskip("pocketsphinx")

from tasks import synth  # noqa: E402
from tasks.cache import AudioCache  # noqa: E402
from tasks.engines import register_engine, reset_engines  # noqa: E402
from tasks.engines import tortoise as tt  # noqa: E402
from tasks.engines.base import Clip, SynthRequest  # noqa: E402
from tasks.engines.piper import PiperEngine  # noqa: E402
from tasks.errors import EngineError  # noqa: E402
from tasks.plan import Chunk, SynthJob  # noqa: E402
from tasks.verify import verify_mode  # noqa: E402
from tests.test_tortoise import TINY_ENV, write_voice  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]

TEXT = "The lamps along the quay were lit one by one as the last boat came slowly home through the fog."


class HeardTortoise(tt.TortoiseEngine):
    """Tiny Tortoise whose takes are heard as Piper speaking the text; its first take has a clause cut out."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir=cache_dir)
        self.piper = PiperEngine()
        self.calls: list[list[int]] = []

    def synthesize_many(self, requests: Sequence[SynthRequest]) -> list[Clip | EngineError]:
        outcomes = super().synthesize_many(requests)
        self.calls.append([r.seed for r in requests])
        out: list[Clip | EngineError] = []
        for request, outcome in zip(requests, outcomes, strict=True):
            if not isinstance(outcome, Clip):
                out.append(outcome)
                continue
            clip = self.piper.synthesize(request.text, "joe", {"sentence_pause_ms": 300}, request.seed)
            x = clip.samples
            if len(self.calls) == 1:
                x = np.concatenate([x[: len(x) // 3], x[2 * len(x) // 3:]])
            out.append(Clip(x, clip.sample_rate_hz))
        return out


@pytest.fixture
def heard_tortoise(tmp_path: Path) -> Iterator[HeardTortoise]:
    saved = {k: os.environ.get(k) for k in TINY_ENV}
    os.environ.update(TINY_ENV)
    engine = HeardTortoise(tmp_path / "latents")
    register_engine("heard-tortoise", lambda: engine)
    yield engine
    reset_engines()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_tortoise_rerolls_a_take_missing_words(heard_tortoise: HeardTortoise, tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    write_voice(voices / "narrator")
    mode, _ = verify_mode(None, "tortoise", "en")
    assert mode == "reroll"
    job = SynthJob(engine="heard-tortoise", voice="narrator", settings=heard_tortoise.settings_for("draft"), seed=4,
                   voices_dir=str(voices), cache_dir=str(tmp_path / "cache"), verify=mode)
    chunk = Chunk(0, 0, TEXT, 300, hashlib.sha256(TEXT.encode()).hexdigest())
    result = synth.synthesize_chunk(chunk, job)
    assert len(heard_tortoise.calls) == 2 and heard_tortoise.calls[0] != heard_tortoise.calls[1]
    assert result.rerolls == 1 and result.heard_rerolls == 1 and result.bad_take is None
    meta = AudioCache(tmp_path / "cache" / "chunks", ".flac").meta(chunk.key)
    assert meta["verify"]["score"] >= 0.9 and meta["heard_rerolls"] == 1
