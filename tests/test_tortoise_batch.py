"""The batched Tortoise path on CPU (fp32, the real model classes at tiny size, random weights).

What it proves: the batched sampler reproduces stock `inference_speech` codes for the same seed; every
chunk's codes are the same and its samples equal within 1e-3 whether it is rendered alone or in a batch of
8; rows that stop end at the stop token; the decode reads the device once per CHECK_EVERY steps; compaction
holds at most one extra layer tensor; out of memory lowers every queued batch; each batched stage (the
diffusion of 8 chunks included) equals its per-chunk counterpart row by row. Every bias of the tiny models
is random and non-zero, so a padded position that leaks into a real one shows.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def randomize_biases(models: tm.TortoiseModels, seed: int = 1) -> None:
    """Every bias (linear, conv, norm) of the four networks random and non-zero: a zero-padded position
    then carries non-zero keys, values and activations, so padding that reaches a real row shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (models.autoregressive, models.diffusion, models.clvp, models.vocoder):
            for name, p in module.named_parameters():
                if name.endswith("bias"):
                    p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def models() -> tm.TortoiseModels:
    """Tiny models whose inference wrapper is stock's default (kv_cache=False: mel positions 0, 1, 2...)."""
    built = tm.build_tiny(0, "cpu", kv_cache=False)
    randomize_biases(built)
    return built


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
    for i in range(len(TEXTS)):
        assert torch.equal(together[i], batched_codes(models, [TEXTS[i]], [seeds[i]])[0]), TEXTS[i]
    assert torch.equal(together[4], stock_codes(models, TEXTS[4], seeds[4]))
    rows = torch.cat(together)
    has_stop = (rows == STOP).any(dim=1)
    first = torch.where(has_stop, (rows == STOP).int().argmax(dim=1), torch.full_like(has_stop, M, dtype=torch.long))
    assert has_stop.sum() >= len(rows) // 2 and len(set(first.tolist())) > 3  # stops at many different steps
    for row, f in zip(rows, first.tolist(), strict=True):
        assert (row[f:] == STOP).all() and (row[:f] != STOP).all()  # nothing but stop after the stop
    # It ends at the first read of the stop flags after the last row stops (reads every CHECK_EVERY steps).
    last = int(first.max().clamp(max=M - 1)) + 1
    assert stats["decode_steps"] == min(M, -(-last // tb.CHECK_EVERY) * tb.CHECK_EVERY)
    assert stats["decode_calls"] == 1 and stats["decode_rows"] == N * len(TEXTS)


@pytest.mark.parametrize("check_every", [1, 3, 8])
def test_stop_checks_and_compaction_points_do_not_change_the_codes(models: tm.TortoiseModels, stopping: None,
                                                                   check_every: int) -> None:
    seeds = [31, 32, 33, 34]
    want = batched_codes(models, TEXTS[:4], seeds, compact=False, check_every=M)
    got = batched_codes(models, TEXTS[:4], seeds, check_every=check_every)
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))


def test_decode_reads_the_device_once_per_check(models: tm.TortoiseModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """No per-step host sync: M steps (random weights never stop) read the device M // CHECK_EVERY times,
    through one .tolist() each; no .item(), bool(), nonzero or boolean-mask indexing in the loop."""
    from torch.utils._python_dispatch import TorchDispatchMode

    reads: list[str] = []
    real_tolist = torch.Tensor.tolist

    def tolist(self: torch.Tensor) -> Any:
        reads.append("tolist")
        return real_tolist(self)

    syncing = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "item"}

    class Syncs(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = func.__name__.split(".")[0]
            if name in syncing or (name == "index" and any(
                    isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or []))):
                reads.append(name)
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    with Syncs():
        codes = batched_codes(models, TEXTS[:3], [1, 2, 3])
    assert all((c != STOP).all() for c in codes)  # every row ran all M steps
    assert reads == ["tolist"] * ((M - 1) // tb.CHECK_EVERY)


def test_compaction_holds_at_most_one_extra_layer_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """keep() frees each layer's old keys (values) as their compacted copy is made: whenever a copy is
    made, the tensors alive are the cache plus that one copy, 1/12 more here (6 layers), <= 1.1x; building
    every copy before dropping the old cache would be 1.5x at this compaction (half the rows kept)."""
    layers = 6
    gpt = SimpleNamespace(h=[SimpleNamespace(attn=SimpleNamespace(num_heads=2, head_dim=8))] * layers)
    decoder = tb._Decoder(gpt, 16, 40, torch.float32, torch.device("cpu"))
    for i, t in enumerate((*decoder.keys, *decoder.values)):  # the cache is torch.empty: give it known values
        t.copy_(torch.arange(t.numel(), dtype=t.dtype).reshape(t.shape) + i)  # (what it held could be NaN)
    del t  # no reference may outlive the compaction
    cache = decoder.nbytes
    old = [weakref.ref(t) for t in (*decoder.keys, *decoder.values)]
    made: list[weakref.ref[torch.Tensor]] = []
    peak = [0]
    real_index_select = torch.Tensor.index_select

    def index_select(self: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
        out = real_index_select(self, dim, index)
        made.append(weakref.ref(out))
        alive = [t for t in (*decoder.keys, *decoder.values, *(r() for r in made)) if t is not None]
        distinct = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in alive}
        peak[0] = max(peak[0], sum(distinct.values()))
        return out

    rows = torch.tensor([0, 2, 3, 5, 8, 9, 10, 15])
    before = [k[rows].clone() for k in (*decoder.keys, *decoder.values)]
    monkeypatch.setattr(torch.Tensor, "index_select", index_select)
    decoder.keep(rows)
    monkeypatch.undo()
    assert all(torch.equal(a, b) for a, b in zip(before, (*decoder.keys, *decoder.values), strict=True))
    assert len(made) == 2 * layers and decoder.nbytes == cache // 2
    assert cache < peak[0] <= cache * (1 + 1 / (2 * layers)) <= 1.1 * cache
    assert all(r() is None for r in old)  # every old tensor was freed


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


@pytest.mark.parametrize(("sampler", "cond_free"), [("ddim", True), ("p", True), ("p", False)])
def test_diffusion_of_8_chunks_equals_the_per_chunk_diffusion(models: tm.TortoiseModels, sampler: str,
                                                              cond_free: bool) -> None:
    """diffuse_many (equal lengths share forwards, guidance in one forward, a generator per chunk) gives
    every chunk the mel the per-chunk `diffuse` gives it on the global generator seeded alike."""
    lengths = [24, 17, 24, 9, 17, 24, 30, 9]  # groups of 3, 2, 2 and a lone chunk
    g = torch.Generator().manual_seed(5)
    latents = [torch.randn(1, n, 64, generator=g) for n in lengths]
    cond = torch.randn(1, 128, generator=g)  # the diffusion latent: scale and shift, 2 x 64 channels
    seeds = [tb.sub_seed(200 + i, "diffusion") for i in range(len(lengths))]
    kw = dict(steps=3, cond_free=cond_free, cond_free_k=2.0, temperature=1.0, sampler=sampler)
    with torch.no_grad():
        together = tb.diffuse_many(models.diffusion, latents, cond, [torch.Generator().manual_seed(s) for s in seeds],
                                   **kw)  # type: ignore[arg-type]
        for i, lat in enumerate(latents):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seeds[i])
                alone = tb.diffuse(models.diffusion, lat, cond, **kw)  # type: ignore[arg-type]
            assert together[i].shape == alone.shape == (1, 100, lengths[i] * 4 * 24000 // 22050)
            # Equal up to rounding (mels span -11.5..2.3): the guided pair's forward of 2 rows rounds its sums
            # unlike two forwards of one (checked tightly below), and x0 = (x - sqrt(1 - a) eps) / sqrt(a)
            # scales eps by ~100 at the first steps.
            assert (together[i] - alone).abs().max() < (5e-3 if cond_free else 1e-3), i
    assert not torch.allclose(together[0], together[2])  # same length, own noise and conditioning


def test_guided_pair_is_one_forward_equal_to_the_two_forwards(models: tm.TortoiseModels) -> None:
    """_Guided blends the conditioned and unconditioned outputs of one forward of 2b rows as stock's
    p_mean_variance blends its two forwards: (1 + k) eps - k eps_free, the variance from the conditioned."""
    from tasks.engines.tortoise_diffusion import _Guided

    g = torch.Generator().manual_seed(9)
    model = models.diffusion
    calls: list[int] = []
    hook = model.register_forward_hook(lambda mod, args, out: calls.append(out.shape[0]))
    x, t = torch.randn(3, 100, 40, generator=g), torch.tensor([3999, 3999, 3999])
    emb = torch.randn(3, 64, 40, generator=g)
    guided = _Guided(model, emb, cond_free=True)
    guided.cfk = 1.5
    try:
        with torch.no_grad():
            out = guided(x, t)
            assert calls == [6]  # one forward, 2 x 3 rows
            cond = model(x, t, precomputed_aligned_embeddings=emb)
            free = model(x, t, precomputed_aligned_embeddings=emb, conditioning_free=True)
    finally:
        hook.remove()
    assert torch.allclose(out[:, :100], 2.5 * cond[:, :100] - 1.5 * free[:, :100], atol=1e-5)
    assert torch.allclose(out[:, 100:], cond[:, 100:], atol=1e-5)


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
    for i, text in enumerate(TEXTS):
        alone = engine.synthesize(text, "narrator", settings, 40 + i, voices_dir=str(voices))
        clip = together[i]
        assert isinstance(clip, Clip) and clip.samples.shape == alone.samples.shape, text
        assert np.abs(clip.samples - alone.samples).max() < 1e-3, text
        assert np.abs(alone.samples).max() > 0
    assert not np.array_equal(together[0].samples[:1000], together[1].samples[:1000])  # type: ignore[union-attr]


def test_out_of_memory_halves_the_batch_and_goes_on(engine: tt.TortoiseEngine, voices: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated CUDA out-of-memory above 2 chunks: the 5 chunks render as 2 + 2 + 1; the lower limit
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
    assert all(isinstance(c, Clip) for c in out) and sizes == [5, 2, 2, 1]
    assert batch_capacity(engine, settings) == 2  # halved once: 4 rows = two chunks of 2 candidates
    sizes.clear()
    out = engine.synthesize_many(requests(voices, settings, ["Fine.", "Too big.", "Also fine."]))
    assert isinstance(out[0], Clip) and isinstance(out[2], Clip) and isinstance(out[1], TransientEngineError)


def test_out_of_memory_lowers_every_queued_batch(engine: tt.TortoiseEngine, voices: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """8 chunks at 4 a batch, out of memory above 2: the second batch of 4 is never tried; memory is freed
    after the except block (no traceback holds the failed batch), once per failure."""
    sizes: list[int] = []
    freed: list[int] = []

    def fake_render(engine_: object, chunks: list[tp.Prepared], *args: object) -> list[Clip]:
        sizes.append(len(chunks))
        if len(chunks) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return [Clip(np.zeros(2400, np.float32) + 0.1, 24000) for _ in chunks]

    def free() -> None:
        import sys

        freed.append(len(sizes))
        assert sys.exc_info() == (None, None, None)  # not inside the except block

    monkeypatch.setattr(tp, "render_batch", fake_render)
    monkeypatch.setattr(tt, "_free_device_memory", free)
    monkeypatch.setattr(engine, "_row_limit", 0)
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_BATCH_ROWS", "8")  # 4 chunks of 2 candidates
    out = engine.synthesize_many(requests(voices, small(engine), TEXTS))
    assert all(isinstance(c, Clip) for c in out)
    assert sizes == [4, 2, 2, 2, 2] and freed == [1]


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
