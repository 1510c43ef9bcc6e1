"""The batched Tortoise path on CPU (fp32, the real model classes at tiny size, random weights).

What it proves: the batched sampler reproduces stock `inference_speech` codes for the same seed; a chunk's
codes are the same and its samples equal within 1e-3 whether it is rendered alone or in a batch of 8;
rows that stop end at the stop token; out of memory halves the batch; each batched stage equals its stock
counterpart row by row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tortoise")

from tasks.engines import tortoise as tt  # noqa: E402
from tasks.engines import tortoise_batch as tb  # noqa: E402
from tasks.engines import tortoise_models as tm  # noqa: E402
from tasks.engines import tortoise_pipeline as tp  # noqa: E402
from tasks.engines.base import Clip, SynthRequest, batch_capacity  # noqa: E402
from tasks.errors import TransientEngineError, UserError  # noqa: E402
from tests.test_tortoise import write_voice  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*weight_norm.*:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*generation.*:UserWarning"),
]

TEXTS = [
    "Hi.",
    "Hello there, this is a short test.",
    "A rather longer sentence, so that the prefixes of one batch differ a lot in length.",
    "Two words.",
    "The tide came in, and the gulls called over the grey water.",
    "Seven.",
    "She closed the book, looked out of the window, and said nothing for a while.",
    "Medium length text here.",
]
STOP = 8193
N, M = 3, 24  # candidates per chunk, codes per candidate
SAMPLING = tb.Sampling(temperature=0.8, top_p=0.8, repetition_penalty=2.0, max_mel=M)


@pytest.fixture(scope="module")
def models() -> tm.TortoiseModels:
    """Tiny models whose inference wrapper is stock's default (kv_cache=False: mel positions 0, 1, 2...)."""
    return tm.build_tiny(0, "cpu", kv_cache=False)


@pytest.fixture
def stopping(models: tm.TortoiseModels) -> Iterator[None]:
    """Raise the stop code's logit so that rows stop at different steps (random weights never stop)."""
    bias = models.autoregressive.mel_head.bias
    with torch.no_grad():
        bias[STOP] += 2.5
    yield
    with torch.no_grad():
        bias[STOP] -= 2.5


def tokens_of(models: tm.TortoiseModels, text: str) -> tuple[int, ...]:
    return (*models.tokenizer.encode(text), 0)


def cond() -> torch.Tensor:
    return torch.randn(64, generator=torch.Generator().manual_seed(3))


def stock_codes(models: tm.TortoiseModels, text: str, seed: int, *, kv_cache: bool = False) -> torch.Tensor:
    """Stock `inference_speech` for one chunk, N candidates in one call, padded to M with the stop code."""
    ar = models.autoregressive
    ar.post_init_gpt2_config(kv_cache=kv_cache)
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            codes = ar.inference_speech(cond()[None], torch.tensor([tokens_of(models, text)]), do_sample=True,
                                        top_p=0.8, temperature=0.8, num_return_sequences=N, length_penalty=1.0,
                                        repetition_penalty=2.0, max_generate_length=M)
    finally:
        ar.post_init_gpt2_config(kv_cache=False)
    return torch.nn.functional.pad(codes, (0, M - codes.shape[1]), value=STOP)


def batched_codes(models: tm.TortoiseModels, texts: list[str], seeds: list[int], **kw: object) -> list[torch.Tensor]:
    prefixes = [tb.Prefix(cond(), tokens_of(models, t), N, torch.Generator().manual_seed(s))
                for t, s in zip(texts, seeds, strict=True)]
    with torch.no_grad():
        return tb.decode(models.autoregressive, prefixes, SAMPLING, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("stops", [False, True])
def test_one_chunk_reproduces_stock_inference_speech(models: tm.TortoiseModels, stops: bool,
                                                     request: pytest.FixtureRequest) -> None:
    """Same seed, same codes, bit for bit: our loop draws the same Exp(1) noise as torch.multinomial and
    applies HF 4.31's penalty, temperature, top-k 50 and top-p in its order; fp32 on CPU rounds alike."""
    if stops:
        request.getfixturevalue("stopping")
    for i in (0, 2):
        ours = batched_codes(models, [TEXTS[i]], [11 + i])[0]
        assert torch.equal(ours, stock_codes(models, TEXTS[i], 11 + i))


def test_position_offset_reproduces_stock_kv_cache_quirk(models: tm.TortoiseModels) -> None:
    """With kv_cache=True stock puts the k-th code at mel position k+1; offset 1 reproduces that, and the
    takes differ from the fixed positions from the second code on."""
    quirk = batched_codes(models, [TEXTS[1]], [5], mel_position_offset=1)[0]
    assert torch.equal(quirk, stock_codes(models, TEXTS[1], 5, kv_cache=True))
    fixed = batched_codes(models, [TEXTS[1]], [5])[0]
    assert torch.equal(fixed[:, 0], quirk[:, 0]) and not torch.equal(fixed[:, 1:], quirk[:, 1:])


def test_codes_same_alone_or_in_a_batch_of_8_and_stopped_rows_end_at_stop(models: tm.TortoiseModels,
                                                                          stopping: None) -> None:
    seeds = [100 + i for i in range(len(TEXTS))]
    stats: dict[str, int] = {}
    together = batched_codes(models, TEXTS, seeds, stats=stats)
    for i in (0, 2, 5, 7):
        assert torch.equal(together[i], batched_codes(models, [TEXTS[i]], [seeds[i]])[0]), TEXTS[i]
    assert torch.equal(together[4], stock_codes(models, TEXTS[4], seeds[4]))
    rows = torch.cat(together)
    has_stop = (rows == STOP).any(dim=1)
    first = torch.where(has_stop, (rows == STOP).int().argmax(dim=1), torch.full_like(has_stop, M, dtype=torch.long))
    assert has_stop.sum() >= len(rows) // 2 and len(set(first.tolist())) > 3  # stops at many different steps
    for row, f in zip(rows, first.tolist(), strict=True):
        assert (row[f:] == STOP).all() and (row[:f] != STOP).all()  # nothing but stop after the stop
    assert stats["decode_steps"] == int(first.max().clamp(max=M - 1)) + 1  # ends when the last row stops


def test_no_compaction_gives_the_same_codes(models: tm.TortoiseModels, stopping: None) -> None:
    seeds = [7, 8, 9]
    assert all(torch.equal(a, b) for a, b in zip(batched_codes(models, TEXTS[:3], seeds),
                                                  batched_codes(models, TEXTS[:3], seeds, compact=False), strict=True))


def test_fix_codes_is_stock_fix_autoregressive_output_per_row() -> None:
    api = tm._tortoise()
    codes = torch.randint(0, 8192, (5, 12))
    codes[0, 4] = codes[0, 7] = STOP
    codes[1, 0] = STOP
    codes[2, 11] = STOP
    codes[3, 9:] = STOP
    want = torch.stack([api.fix_autoregressive_output(row.clone(), STOP, complain=False) for row in codes])
    assert torch.equal(tb.fix_codes(codes, STOP), want)


def test_ar_latents_batched_equal_the_stock_forward(models: tm.TortoiseModels) -> None:
    ar = models.autoregressive
    c = cond()[None]
    texts = [TEXTS[0], TEXTS[2], TEXTS[4]]
    codes = torch.randint(0, 8192, (3, M))
    with torch.no_grad():
        together = tb.ar_latents(ar, [c] * 3, [tokens_of(models, t) for t in texts], codes)
        for i, t in enumerate(texts):
            tok = torch.tensor([tokens_of(models, t)])
            solo = ar(c, tok, torch.tensor([tok.shape[1]]), codes[i:i + 1], torch.tensor([M * 1024]),
                      return_latent=True, clip_inputs=False)
            assert torch.allclose(together[i:i + 1], solo, atol=1e-5)


# -- the engine -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(models: tm.TortoiseModels, tmp_path_factory: pytest.TempPathFactory) -> tt.TortoiseEngine:
    # The batched path runs its own decode, so the inference wrapper's kv_cache setting does not matter.
    engine = tt.TortoiseEngine(models=models, device="cpu", cache_dir=tmp_path_factory.mktemp("c"))
    engine._prompt_mode = "dropped"  # no wav2vec aligner offline
    return engine


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voices")
    write_voice(root / "narrator")
    return root


def small(engine: tt.TortoiseEngine, **over: object) -> dict[str, object]:
    return {**tt.QUALITY_SETTINGS["draft"], "decoder": "batched", "num_autoregressive_samples": 2,
            "max_mel_tokens": 12, "diffusion_iterations": 2, **over}


def requests(voices: Path, settings: dict[str, object], texts: list[str]) -> list[SynthRequest]:
    return [SynthRequest(t, "narrator", settings, 40 + i, str(voices)) for i, t in enumerate(texts)]


def test_engine_samples_equal_alone_or_in_a_batch_of_8(engine: tt.TortoiseEngine, voices: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings = small(engine)  # DDIM, 2 steps
    calls: list[int] = []
    real = tp.render_batch

    def spy(engine_: object, chunks: list[tp.Prepared], *args: object) -> list[Clip]:
        calls.append(len(chunks))
        return real(engine_, chunks, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tp, "render_batch", spy)
    together = engine.synthesize_many(requests(voices, settings, TEXTS))
    assert calls == [8] and all(isinstance(c, Clip) for c in together)
    for i in (0, 6):
        alone = engine.synthesize(TEXTS[i], "narrator", settings, 40 + i, voices_dir=str(voices))
        clip = together[i]
        assert isinstance(clip, Clip) and clip.samples.shape == alone.samples.shape
        assert np.abs(clip.samples - alone.samples).max() < 1e-3
        assert np.abs(alone.samples).max() > 0
    assert not np.array_equal(together[0].samples[:1000], together[1].samples[:1000])  # type: ignore[union-attr]


def test_out_of_memory_halves_the_batch_and_goes_on(engine: tt.TortoiseEngine, voices: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated CUDA out-of-memory above 2 chunks: the 5 chunks render as 2 + 1 + 2; the lower limit
    stays; a chunk that does not fit alone is a transient fault of that chunk only."""
    sizes: list[int] = []

    def fake_render(engine_: object, chunks: list[tp.Prepared], *args: object) -> list[Clip]:
        sizes.append(len(chunks))
        if len(chunks) > 2 or any(c.text == "Too big." for c in chunks):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return [Clip(np.zeros(2400, np.float32) + 0.1, 24000) for _ in chunks]

    monkeypatch.setattr(tp, "render_batch", fake_render)
    monkeypatch.setattr(engine, "_row_limit", 0)
    settings = small(engine)
    before = batch_capacity(engine, settings)
    assert before == tt.MAX_ROWS_CPU // 2
    out = engine.synthesize_many(requests(voices, settings, TEXTS[:5]))
    assert all(isinstance(c, Clip) for c in out) and sizes == [5, 2, 3, 1, 2]
    assert batch_capacity(engine, settings) == 1  # halved twice: 2 rows = one chunk of 2 candidates
    sizes.clear()
    out = engine.synthesize_many(requests(voices, settings, ["Fine.", "Too big.", "Also fine."]))
    assert isinstance(out[0], Clip) and isinstance(out[2], Clip) and isinstance(out[1], TransientEngineError)


def test_ddim_steps_must_divide_evenly(engine: tt.TortoiseEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tt.ddim_steps_ok(20) and tt.ddim_steps_ok(30) and not tt.ddim_steps_ok(1500)
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_DIFFUSION_STEPS", "1500")
    with pytest.raises(UserError, match="DDIM"):
        engine.settings_for("draft")
    assert engine.settings_for("high")["diffusion_iterations"] == 1500  # DDPM takes any count


def test_per_request_errors_do_not_sink_the_batch(engine: tt.TortoiseEngine, voices: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tp, "render_batch", lambda e, chunks, *a: [Clip(np.ones(10, np.float32), 24000)
                                                                   for _ in chunks])
    out = engine.synthesize_many(requests(voices, small(engine), ["Fine.", "[only a prompt]", "word " * 400]))
    assert isinstance(out[0], Clip)
    assert "empty" in str(out[1]) and "tokens" in str(out[2])
