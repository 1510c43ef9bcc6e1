"""Piper's ONNX model with its noise as inputs: one onnxruntime session serves every seed.

Piper's VITS model draws Gaussian noise inside the graph (two `RandomNormalLike` ops: the duration
predictor's and the flow's). onnxruntime seeds such ops only when a session is built, so a seed could
only be honoured by building a session per chunk. `noise_graph` edits the model once (with the `onnx`
package) so that each random op becomes a graph input the caller fills from its own RNG:

    noise_K       float32 [n]   time-major noise, n >= the op's element count (extra values unused)
    noise_K_shape int64   [3]   output: the shape the op needed ([batch, channels, frames])

Inside the graph the input is padded with zeros to at least the needed size, cut to it, and reshaped
time-major ([frames, batch, channels], then transposed), so the values a frame gets do not depend on
how long a buffer the caller passed. A caller that passed too few values sees it in `noise_K_shape`
and runs again with enough (same values at the same places, so the same audio).

The edited model is written once per original model (keyed by its content hash and EDIT_VERSION)
under the cache folder, temp-then-rename, and its noise channels are stored in its metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.atomic import atomic_path

EDIT_VERSION = "1"  # changes to the edit below must bump it (the cached file's name holds it)
METADATA_KEY = "audiobook.noise_inputs"
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli"}


class GraphEditError(ValueError):
    """The model cannot be edited (an unexpected random op, or none at all)."""


@dataclass(frozen=True)
class NoiseInput:
    name: str  # graph input holding this op's noise
    shape_output: str  # graph output: the shape the op needed
    channels: int  # elements per frame (batch x channels), learned by a probe run at edit time
    mean: float
    scale: float


def cached_graph_path(cache_root: Path, model_fingerprint: str) -> Path:
    return cache_root / "piper-graphs" / f"{model_fingerprint[:32]}-noise-v{EDIT_VERSION}.onnx"


def _random_nodes(graph: Any) -> list[Any]:
    found = []
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs]:
                if any(n.op_type in RANDOM_OPS for n in sub.node):
                    raise GraphEditError(f"a random op inside the subgraph of {node.name!r} (not supported)")
        if node.op_type in RANDOM_OPS:
            if node.op_type != "RandomNormalLike":
                raise GraphEditError(f"random op {node.op_type} ({node.name!r}) is not supported")
            found.append(node)
    if not found:
        raise GraphEditError("the model draws no noise (no RandomNormalLike op)")
    return found


def edit_model(model: Any) -> list[tuple[str, str, float, float]]:
    """Replace every RandomNormalLike in `model` (an onnx.ModelProto, edited in place) by a noise input.

    Returns (input name, shape output name, mean, scale) per op, in graph order.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    added = []
    for k, node in enumerate(_random_nodes(graph)):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("dtype", TensorProto.FLOAT) != TensorProto.FLOAT:
            raise GraphEditError(f"{node.name!r} draws non-float32 noise (not supported)")
        noise, shape_out, p = f"noise_{k}", f"noise_{k}_shape", f"/audiobook/noise_{k}/"
        target, result = node.input[0], node.output[0]
        consts = {
            "zero": helper.make_tensor(f"{p}zero", TensorProto.INT64, [1], [0]),
            "tbc": helper.make_tensor(f"{p}tbc", TensorProto.INT64, [3], [2, 0, 1]),
        }
        nodes = [
            helper.make_node("Constant", [], [f"{p}zero"], value=consts["zero"]),
            helper.make_node("Constant", [], [f"{p}tbc"], value=consts["tbc"]),
            helper.make_node("Shape", [target], [shape_out]),
            helper.make_node("ReduceProd", [shape_out], [f"{p}need"], keepdims=1),
            helper.make_node("Concat", [f"{p}zero", f"{p}need"], [f"{p}pads"], axis=0),
            helper.make_node("Pad", [noise, f"{p}pads"], [f"{p}padded"]),
            helper.make_node("Slice", [f"{p}padded", f"{p}zero", f"{p}need"], [f"{p}head"]),
            helper.make_node("Gather", [shape_out, f"{p}tbc"], [f"{p}tbc_shape"], axis=0),
            helper.make_node("Reshape", [f"{p}head", f"{p}tbc_shape"], [f"{p}tbc_noise"]),
            helper.make_node("Transpose", [f"{p}tbc_noise"], [result], perm=[1, 2, 0]),
        ]
        position = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(nodes):
            graph.node.insert(position + offset, new)
        graph.input.append(helper.make_tensor_value_info(noise, TensorProto.FLOAT, [f"noise_{k}_len"]))
        graph.output.append(helper.make_tensor_value_info(shape_out, TensorProto.INT64, [3]))
        added.append((noise, shape_out, float(attrs.get("mean", 0.0)), float(attrs.get("scale", 1.0))))
    return added


def probe_ids(phoneme_id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """A tiny valid input: BOS, one vowel, EOS (Piper's own marks), for the edit-time probe."""
    ids: list[int] = []
    for mark in ("^", "a", "$"):
        ids.extend(phoneme_id_map.get(mark, [0]))
    return ids


def _probe_channels(model_bytes: bytes, added: list[tuple[str, str, float, float]], ids: list[int]) -> list[int]:
    """Run the edited model once with empty noise (zeros) to learn each op's elements per frame."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    feeds: dict[str, Any] = {
        "input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32),
    }
    if any(i.name == "sid" for i in session.get_inputs()):
        feeds["sid"] = np.array([0], dtype=np.int64)
    for noise, *_ in added:
        feeds[noise] = np.zeros(0, dtype=np.float32)
    shapes = session.run([s for _, s, *_ in added], feeds)
    channels = []
    for (noise, *_), shape in zip(added, shapes, strict=True):
        if len(shape) != 3:
            raise GraphEditError(f"{noise} has rank {len(shape)}; expected [batch, channels, frames]")
        channels.append(int(shape[0] * shape[1]))
    return channels


def noise_inputs(session: Any) -> list[NoiseInput]:
    """The noise inputs of an onnxruntime session over a graph that `noise_graph` wrote (its metadata)."""
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise GraphEditError(f"no {METADATA_KEY} metadata (not a graph written by noise_graph)")
    inputs = [NoiseInput(**entry) for entry in json.loads(meta[METADATA_KEY])]
    if {i.name for i in inputs} - {i.name for i in session.get_inputs()}:
        raise GraphEditError("the graph lacks the noise inputs its metadata names")
    return inputs


def noise_graph(model_path: Path, fingerprint: str, phoneme_id_map: Mapping[str, Sequence[int]],
                cache_root: Path, *, rebuild: bool = False) -> Path:
    """The edited copy of `model_path`: written on first use (or when `rebuild`), else the cached file."""
    import onnx

    target = cached_graph_path(cache_root, fingerprint)
    if target.exists() and not rebuild:
        return target
    model = onnx.load(str(model_path))
    added = edit_model(model)
    channels = _probe_channels(model.SerializeToString(), added, probe_ids(phoneme_id_map))
    inputs = [NoiseInput(name=n, shape_output=s, channels=c, mean=mean, scale=scale)
              for (n, s, mean, scale), c in zip(added, channels, strict=True)]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps([vars(i) for i in inputs])
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))
    return target
