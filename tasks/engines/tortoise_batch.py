"""Tortoise's stages for many chunks at once, each chunk's result independent of its batch-mates.

    decode(ar, prefixes, ...)        one autoregressive decode for K chunks x N candidates
    fix_codes(codes, stop)           fix_autoregressive_output, vectorised over rows
    ar_latents(ar, conds, ...)       the AR model's latents of K winners in one forward pass
    diffuse_many(model, ...)         K chunks' mels, DDPM or DDIM, equal lengths sharing forwards
                                     (tortoise_diffusion; `diffuse` is one chunk on the global RNG)
    vocode(vocoder, mels, seeds)     UnivNet over K mels at once

Batch invariance is the point: every chunk draws its sampling noise from its own torch.Generator (seeded
from the chunk's seed), in the shapes HF `generate` would draw them for that chunk alone, and padding never
reaches a real position (left-padded prefixes with a key mask; the vocoder's tail pad is longer than its
receptive field). So a chunk's codes are the same alone or in a batch, and its samples equal up to float
rounding: the cache key keeps naming one take.

The decode is our own loop over the GPT-2 blocks of `ar.gpt` (HF's modules for the projections, norms and
MLP; attention by `scaled_dot_product_attention`) on a key/value cache allocated once for the whole decode
and written in place (HF's concatenates, copying the whole cache every step). It reproduces HF 4.31's
sampling for Tortoise's arguments: repetition penalty over the fake prefix ids {1, start} and every code,
temperature, top-k 50 (GenerationConfig's default, which stock gets without asking), top-p, multinomial
as `argmax(probs / Exp(1))` (what torch.multinomial does for one sample), stop on the stop token, at most
`max_mel` codes. Finished rows are dropped from the batch once enough of them have finished.
The loop never waits on the device between its reads of the stop flags, one every CHECK_EVERY steps.

Mel positions: stock with kv_cache=True gives the k-th generated code mel position k+1 (position 1 is never
used); training, the latent pass and stock's default kv_cache=False use 0, 1, 2, ... We use the latter
(`QUIRK_POSITIONS` = False); `mel_position_offset=1` reproduces the kv_cache=True quirk for comparison.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tasks.engines.tortoise_diffusion import diffuse, diffuse_many, diffuser  # noqa: F401 - re-exported

CALM_TOKEN = 83  # the AR code for silence
FAKE_PREFIX_ID = 1  # the ids HF generate sees before the start token (inference_speech's fake inputs)
TOP_K = 50  # GenerationConfig's default, applied by stock generate(do_sample=True)
VOCODER_PAD_FRAMES = 24  # > UnivNet's receptive field (~13 frames): batch padding never reaches a kept sample
VOCODER_PAD_VALUE = -11.5129  # log(1e-5): silence, as UnivNetGenerator.inference pads
COMPACT_BELOW = 0.75  # drop finished rows when at most this share of the batch still runs
CHECK_EVERY = 8  # decode steps between host reads of the stop flags (stop detection, compaction)


def sub_seed(seed: int, stage: str) -> int:
    """A stage's seed derived from a chunk's seed (63 bits), so stages draw from unrelated streams."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stage}".encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    repetition_penalty: float
    max_mel: int
    top_k: int = TOP_K


@dataclass
class Prefix:
    """One chunk: its voice latent (d,), text ids (ENG's trailing pad included), candidates and generator."""

    cond: torch.Tensor
    tokens: Sequence[int]
    candidates: int
    generator: torch.Generator


def _prefix_embedding(ar: Any, cond: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """[voice latent, start_text + text + stop_text at text positions 0.., start_mel at mel position 0]."""
    device = cond.device
    text = torch.tensor([ar.start_text_token, *tokens, ar.stop_text_token], dtype=torch.long, device=device)
    text_emb = ar.text_embedding(text) + ar.text_pos_embedding.emb(torch.arange(text.shape[0], device=device))
    start = torch.tensor([ar.start_mel_token], dtype=torch.long, device=device)
    start_emb = ar.mel_embedding(start) + ar.mel_pos_embedding.emb(torch.zeros(1, dtype=torch.long, device=device))
    return torch.cat([cond.reshape(1, -1).to(text_emb.dtype), text_emb, start_emb], dim=0)


def _left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, d) left-padded with zeros, and the (B, L) bool mask of real positions."""
    length = max(r.shape[0] for r in rows)
    out = rows[0].new_zeros(len(rows), length, rows[0].shape[1])
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device=rows[0].device)
    for i, r in enumerate(rows):
        out[i, length - r.shape[0]:] = r
        mask[i, length - r.shape[0]:] = True
    return out, mask


class _Decoder:
    """GPT-2 blocks over a preallocated key/value cache (rows, heads, length, head_dim) per layer."""

    def __init__(self, gpt: Any, rows: int, length: int, dtype: torch.dtype, device: torch.device) -> None:
        self.gpt = gpt
        attn = gpt.h[0].attn
        self.heads, self.head_dim = attn.num_heads, attn.head_dim
        shape = (rows, self.heads, length, self.head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in gpt.h]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in gpt.h]

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, start: int, bias: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, n, d) at cache columns start..start+n; `bias` (B, 1, n, start+n) additive; returns ln_f(h).

        `rows` (prefill only): the cache rows each input row's keys and values are copied to."""
        end = start + x.shape[1]
        for layer, block in enumerate(self.gpt.h):
            h = block.ln_1(x)
            q, k, v = block.attn.c_attn(h).split(block.attn.split_size, dim=2)
            q, k, v = self._split(q), self._split(k), self._split(v)
            cache_k, cache_v = self.keys[layer], self.values[layer]
            if rows is None:
                cache_k[:, :, start:end] = k
                cache_v[:, :, start:end] = v
                k_all, v_all = cache_k[:, :, :end], cache_v[:, :, :end]
            else:
                cache_k[:, :, start:end] = k.index_select(0, rows)
                cache_v[:, :, start:end] = v.index_select(0, rows)
                k_all, v_all = k, v
            a = F.scaled_dot_product_attention(q, k_all.to(q.dtype), v_all.to(q.dtype), attn_mask=bias.to(q.dtype))
            a = a.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
            x = x + block.attn.c_proj(a)
            x = x + block.mlp(block.ln_2(x))
        return self.gpt.ln_f(x)  # type: ignore[no-any-return]

    def keep(self, rows: torch.Tensor) -> None:
        """Compact the cache to `rows` (indices into the current rows), one tensor at a time: each new
        tensor replaces its old one before the next is built, so the peak is the cache plus one layer's
        keys (1 + 1/(2 x layers) of the cache), not two caches."""
        for cache in (self.keys, self.values):
            for layer in range(len(cache)):
                cache[layer] = cache[layer].index_select(0, rows)  # the old tensor is freed here

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def _warp(logits: torch.Tensor, seen: torch.Tensor, s: Sampling) -> torch.Tensor:
    """HF 4.31's processors for Tortoise's arguments, in its order: repetition penalty, then the warpers
    temperature, top-k, top-p. Returns probabilities (rows, vocab)."""
    penalised = torch.where(logits < 0, logits * s.repetition_penalty, logits / s.repetition_penalty)
    scores = torch.where(seen, penalised, logits)
    if s.temperature != 1.0:
        scores = scores / s.temperature
    if s.top_k:
        kth = torch.topk(scores, min(s.top_k, scores.shape[-1]))[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if s.top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(scores, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - s.top_p)
        remove[..., -1:] = False
        scores = scores.masked_fill(remove.scatter(1, sorted_idx, remove), -float("inf"))
    return torch.softmax(scores, dim=-1)


def decode(ar: Any, prefixes: Sequence[Prefix], sampling: Sampling, *, mel_position_offset: int = 0,
           compact: bool = True, check_every: int = CHECK_EVERY, stats: dict[str, Any] | None = None,
           ) -> list[torch.Tensor]:
    """Sample every chunk's candidates in one decode. Returns per chunk (candidates, max_mel) long codes,
    padded with the stop token after it (as stock pads them). Call under torch.no_grad (and autocast).

    The host reads the device once every `check_every` steps (a K+1 integer copy): whether any row
    still runs, and which chunks do. Between reads nothing waits on the device: finished rows are
    forced to the stop code on the device, the noise of each chunk that still has rows in the batch is
    drawn into its slot of one (rows, vocab) buffer, the key mask is a view of one tensor built at the
    start, and the mel position comes from a table. Compaction (at a read) takes device-side indices."""
    device = prefixes[0].cond.device
    stop, vocab = int(ar.stop_mel_token), int(ar.mel_head.out_features)
    counts = [p.candidates for p in prefixes]
    starts = [sum(counts[:i]) for i in range(len(prefixes))]
    total = sum(counts)
    chunk_of_row = torch.repeat_interleave(torch.arange(len(prefixes), device=device),
                                           torch.tensor(counts, device=device), output_size=total)
    prefix, real = _left_pad([_prefix_embedding(ar, p.cond, p.tokens) for p in prefixes])
    length = prefix.shape[1]
    width = length + sampling.max_mel
    autocast = device.type == "cuda" and torch.is_autocast_enabled("cuda")
    dtype = torch.float16 if autocast else prefix.dtype  # the cache's and the masks' (q's) dtype
    neg = torch.finfo(torch.float16).min  # finite in fp16 and fp32: fully masked pad rows stay finite
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    allowed = causal[None] & real[:, None, :]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, neg)[:, None]
    decoder = _Decoder(ar.gpt, total, width, dtype, device)
    hidden = decoder.forward(prefix, 0, bias, rows=chunk_of_row)[:, -1:]  # the start token's state, per chunk
    logits = ar.mel_head(ar.final_norm(hidden))[:, 0].float().index_select(0, chunk_of_row)
    del bias, allowed

    # Per row, built once and compacted with the rows: the key bias over the whole cache width (pads
    # masked, every decode column open), the "seen" ids of the repetition penalty, its chunk.
    key_bias = torch.zeros(total, 1, 1, width, dtype=dtype, device=device)
    key_bias[:, 0, 0, :length].masked_fill_(~real.index_select(0, chunk_of_row), neg)
    seen = torch.zeros(total, vocab, dtype=torch.bool, device=device)
    seen[:, FAKE_PREFIX_ID] = True
    seen[:, ar.start_mel_token] = True
    row_chunk = chunk_of_row
    # The input at step s (s = 0, 1, ...) is the code picked at step s, at mel position s + 1 (+ offset).
    positions = ar.mel_pos_embedding.emb(
        torch.arange(1 + mel_position_offset, sampling.max_mel + mel_position_offset, device=device))
    codes = torch.full((sampling.max_mel, total), stop, dtype=torch.long, device=device)  # step-major
    noise = torch.empty(total, vocab, dtype=torch.float32, device=device)  # every row's slot, all chunks
    live = torch.arange(total, device=device)  # global row of each batch row
    active = torch.ones(total, dtype=torch.bool, device=device)  # not yet stopped
    drawing = list(range(len(prefixes)))  # chunks with rows in the batch: they draw every step
    full = True  # the batch holds every row in global order (no compaction yet)
    steps = 0
    for step in range(sampling.max_mel):
        steps += 1
        probs = _warp(logits, seen, sampling)
        # Each chunk with rows in the batch draws Exp(1) noise shaped (its candidates, vocab) from its
        # own generator, as torch.multinomial(probs, 1) does inside that chunk's own generate call.
        for ci in drawing:
            noise[starts[ci]:starts[ci] + counts[ci]].exponential_(generator=prefixes[ci].generator)
        picks = torch.argmax(probs / (noise if full else noise.index_select(0, live)), dim=-1)
        picks = torch.where(active, picks, stop)  # finished rows stay at the stop code (HF pads them)
        codes[step].index_copy_(0, live, picks)
        seen.scatter_(1, picks[:, None], True)
        active &= picks != stop
        if step + 1 == sampling.max_mel:
            break
        if (step + 1) % check_every == 0:
            running = torch.zeros(len(prefixes), dtype=torch.long, device=device).index_add_(
                0, row_chunk, active.long()).tolist()  # the one host read
            still = sum(running)
            if still == 0:
                break
            if compact and still <= COMPACT_BELOW * live.shape[0]:
                keep = torch.argsort((~active).to(torch.uint8), stable=True)[:still]  # running rows, in order
                decoder.keep(keep)
                live, picks, active = live[keep], picks[keep], active[keep]
                key_bias, seen, row_chunk = key_bias[keep], seen[keep], row_chunk[keep]
                drawing = [ci for ci in drawing if running[ci] > 0]
                full = False
        emb = ar.mel_embedding(picks)[:, None] + positions[step][None, None]
        column = length + step
        hidden = decoder.forward(emb.to(prefix.dtype), column, key_bias[..., :column + 1])
        logits = ar.mel_head(ar.final_norm(hidden))[:, 0].float()
    if stats is not None:
        stats["decode_steps"] = stats.get("decode_steps", 0) + steps
        stats["decode_rows"] = stats.get("decode_rows", 0) + total
        stats["decode_calls"] = stats.get("decode_calls", 0) + 1
    out = codes.t()
    return [out[s:s + n].contiguous() for s, n in zip(starts, counts, strict=True)]


def fix_codes(codes: torch.Tensor, stop: int) -> torch.Tensor:
    """Tortoise's fix_autoregressive_output for each row of (B, M): the first stop and all after it become
    the calm code, and a row that stopped ends in 45, 45, 248 (its last three columns)."""
    is_stop = codes == stop
    stopped = is_stop.any(dim=1)
    width = codes.shape[1]
    first = torch.where(stopped, is_stop.int().argmax(dim=1), torch.full_like(stopped, width, dtype=torch.long))
    after = torch.arange(width, device=codes.device)[None] >= first[:, None]
    fixed = torch.where(after, torch.full_like(codes, CALM_TOKEN), codes)
    tail = torch.tensor([45, 45, 248], dtype=codes.dtype, device=codes.device)
    fixed[stopped, -3:] = tail
    return fixed


def ar_latents(ar: Any, conds: Sequence[torch.Tensor], tokens: Sequence[Sequence[int]], codes: torch.Tensor) -> torch.Tensor:
    """UnifiedVoice.forward(..., return_latent=True) for K chunks at once: rows left-padded with a key
    mask, the last M+2 positions (the mel block) read back. codes (K, M) -> (K, M, d)."""
    device = codes.device
    rows = []
    mel = F.pad(F.pad(codes, (0, 1), value=ar.stop_mel_token), (1, 0), value=ar.start_mel_token)  # (K, M+2)
    mel_emb = ar.mel_embedding(mel) + ar.mel_pos_embedding.emb(torch.arange(mel.shape[1], device=device))[None]
    for i, (cond, toks) in enumerate(zip(conds, tokens, strict=True)):
        text = torch.tensor([ar.start_text_token, *toks, ar.stop_text_token], dtype=torch.long, device=device)
        text_emb = ar.text_embedding(text) + ar.text_pos_embedding.emb(torch.arange(text.shape[0], device=device))
        rows.append(torch.cat([cond.reshape(1, -1).to(text_emb.dtype), text_emb, mel_emb[i]], dim=0))
    emb, real = _left_pad(rows)
    out = ar.gpt(inputs_embeds=emb, attention_mask=real.long(), return_dict=True).last_hidden_state
    enc = ar.final_norm(out[:, -mel.shape[1]:])
    return enc[:, :-2]  # type: ignore[no-any-return]


def calm_trim(latents: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Cut one chunk's latents (1, M, d) after a run of 8 calm codes, as stock tts() does."""
    run = 0
    for k, code in enumerate(codes.tolist()):
        run = run + 1 if code == CALM_TOKEN else 0
        if run > 8:
            return latents[:, :k]
    return latents


def vocode(vocoder: Any, mels: Sequence[torch.Tensor], seeds: Sequence[int]) -> list[torch.Tensor]:
    """UnivNet over K mels (1, 100, L_k) at once; per chunk noise from its seed. Returns (L_k * hop,) each."""
    device = mels[0].device
    width = max(m.shape[-1] for m in mels) + VOCODER_PAD_FRAMES
    batch = torch.full((len(mels), mels[0].shape[1], width), VOCODER_PAD_VALUE, device=device)
    z = torch.zeros(len(mels), vocoder.noise_dim, width, device=device)
    for i, (mel, seed) in enumerate(zip(mels, seeds, strict=True)):
        n = mel.shape[-1]
        batch[i, :, :n] = mel[0]
        g = torch.Generator(device=device).manual_seed(seed)
        z[i, :, :n + VOCODER_PAD_FRAMES] = torch.randn(vocoder.noise_dim, n + VOCODER_PAD_FRAMES, generator=g,
                                                       device=device)
    audio = vocoder(batch, z)  # (K, 1, width * hop)
    hop = vocoder.hop_length
    return [audio[i, 0, :m.shape[-1] * hop].clamp(-1, 1) for i, m in enumerate(mels)]
