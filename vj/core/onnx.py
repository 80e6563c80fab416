"""Networks on ONNX Runtime, for the CPU: exported in memory, run by a session whose threads do not spin.

On this project's 2-core target ONNX Runtime runs the mosaic's EfficientNet-Lite0 1.5x faster than the
frozen torch trace and a DCGAN generator 1.7-2.4x faster than eager torch (one image, one thread), with the
same outputs to float rounding. Both users (``vj.core.features``, ``gan.walk``) fall back to torch when
``onnxruntime`` is missing or a network does not export.
"""
from __future__ import annotations

import io
import json
import queue
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from vj.core.media import center_crop


def export_onnx(net, example, inputs: str = "x", outputs: str = "y") -> bytes:
    """``net`` (a torch module in eval mode) as an ONNX model in memory, the batch axis dynamic."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (example,), buf, dynamo=False, input_names=[inputs], output_names=[outputs],
                          dynamic_axes={inputs: {0: "batch"}, outputs: {0: "batch"}}, opset_version=17)
    return buf.getvalue()


class CpuSession:
    """One ONNX model on the CPU: ``threads`` intra-op threads that sleep when idle (spinning threads
    starve the decoder and the compositor that share the cores), called with and returning numpy arrays."""

    def __init__(self, model: bytes, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, np.float32)})[0]


META_KEY = "reframe-vj"  # the model's own metadata (a quantiser adds entries of its own beside it)


def with_metadata(model: bytes, meta: dict) -> bytes:
    """``model`` with ``meta`` (JSON values) in its metadata: a saved network that describes its input."""
    import onnx

    proto = onnx.load_from_string(model)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    return proto.SerializeToString()


def prepare_input(frames: np.ndarray, size: int, mean, std) -> np.ndarray:
    """(B, H, W, 3) uint8 -> a centre-cropped, resized, normalised (B, 3, size, size) float32 batch."""
    if frames.shape[1:3] != (size, size):
        interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_CUBIC
        frames = np.stack([cv2.resize(center_crop(f), (size, size), interpolation=interp) for f in frames])
    m = np.asarray(mean, np.float32) * 255
    scale = 1.0 / (np.asarray(std, np.float32) * 255)
    return np.ascontiguousarray(((frames.astype(np.float32) - m) * scale).transpose(0, 3, 1, 2))


def stream_batches(extract: Callable[[np.ndarray], np.ndarray], batch: int, frames: Iterable[np.ndarray],
                   prefetch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``extract`` over a stream of frames in batches, decoding on a thread overlapped with inference.
    Yields (frames batch (B, H, W, 3) uint8, features (B, dim))."""
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    error: list[BaseException] = []

    def produce():
        try:
            for f in frames:
                q.put(f)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consumer side
            error.append(exc)
        finally:
            q.put(None)

    threading.Thread(target=produce, name="decode", daemon=True).start()
    done = False
    while not done:
        items = []
        while len(items) < batch:
            f = q.get()
            if f is None:
                done = True
                break
            items.append(f)
        if items:
            arr = np.stack(items)
            yield arr, extract(arr)
    if error:
        raise error[0]


class FeatureModel:
    """A feature network saved as an ONNX file (``vj.core.features.FeatureExtractor.save_onnx``) with its
    input in its metadata. A mosaic keeps the one that made its features, so a query gets the very same
    features; it loads in a fraction of a second and needs neither torch nor the model's code."""

    def __init__(self, path: str | Path, threads: int = 2, batch: int = 16):
        self.path = Path(path)
        self.session = CpuSession(self.path.read_bytes(), threads)
        meta = self.session.session.get_modelmeta().custom_metadata_map
        try:
            self.meta = json.loads(meta[META_KEY])
            self.size, self.dim = int(self.meta["size"]), int(self.meta["dim"])
            self.mean, self.std = self.meta["mean"], self.meta["std"]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{self.path}: not a feature model (its metadata lacks {exc})") from None
        self.backbone, self.precision = self.meta.get("backbone", "?"), self.meta.get("precision", "fp32")
        self.runtime = f"onnx {self.precision}"
        self.batch = batch

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, dim) float32 features."""
        out = [self.session(prepare_input(frames[i:i + self.batch], self.size, self.mean, self.std))
               for i in range(0, len(frames), self.batch)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def stream(self, frames: Iterable[np.ndarray], prefetch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return stream_batches(self, self.batch, frames, prefetch)
