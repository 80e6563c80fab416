"""Networks on the CPU as ONNX models: exported in memory, run by sessions that share the cores politely
(ONNX Runtime's threads do not spin; OpenVINO's are told how many they may be).

On this project's 2-core target ONNX Runtime runs the mosaic's EfficientNet-Lite0 1.5x faster than the
frozen torch trace and a DCGAN generator 1.7-2.4x faster than eager torch (one image, one thread), with the
same outputs to float rounding. Both users (``vj.core.features``, ``gan.walk``) fall back to torch when
``onnxruntime`` is missing or a network does not export.

Feature networks (batches of 16) run on OpenVINO where it is installed (:func:`feature_session`): in fp32
1.25x ONNX Runtime on the same model with the same features (7e-6 apart), and on a CPU with native bfloat16
(AVX512-BF16, AMX) in ``bf16`` 2.5x.
"""
from __future__ import annotations

import io
import json
import logging
import queue
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from vj.core.media import center_crop

log = logging.getLogger(__name__)


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


class OpenVinoSession:
    """One ONNX model compiled by OpenVINO for the CPU, called like :class:`CpuSession`. ``precision``:
    ``fp32``, or ``bf16`` (its matrix work in bfloat16 where the CPU does that natively, fp32 elsewhere).

    With ``normalise`` ((mean, std) per channel, on a 0-1 scale) it takes the frames themselves, (B, S, S, 3)
    uint8, and does :func:`prepare_input`'s arithmetic inside the network, where OpenVINO fuses it into the
    first convolution (numpy spent 0.7 ms a frame on it, a tenth of the network's time on 2 cores)."""

    def __init__(self, model: bytes, threads: int = 1, precision: str = "fp32", normalise=None):
        import openvino as ov

        core = ov.Core()
        self.precision = precision if precision == "fp32" or native_bf16(core) else "fp32"
        net = core.read_model(model)
        self.takes_frames = normalise is not None
        if self.takes_frames:
            from openvino.preprocess import PrePostProcessor

            mean, std = (np.asarray(v, np.float32) * 255 for v in normalise)
            ppp = PrePostProcessor(net)
            ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            ppp.input().model().set_layout(ov.Layout("NCHW"))
            ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(mean.tolist()).scale(std.tolist())
            net = ppp.build()
        self.compiled = core.compile_model(net, "CPU", {
            "INFERENCE_NUM_THREADS": max(1, threads), "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32"})
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.uint8 if self.takes_frames else np.float32)
        # the output tensor is the request's own buffer, overwritten by the next call: copied out
        return np.array(self.request.infer({0: x})[0], copy=True)


def native_bf16(core=None) -> bool:
    """Whether this CPU computes bfloat16 natively (OpenVINO's view: AVX512-BF16 or AMX)."""
    try:
        import openvino as ov

        return "BF16" in (core or ov.Core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no OpenVINO: no bf16 path
        return False


def feature_session(model: bytes, threads: int, precision: str = "fp32", normalise=None):
    """The fastest CPU session for a feature network of ``precision``: OpenVINO for fp32 and bf16 where it is
    installed, else ONNX Runtime (which runs bf16 as fp32); int8 models (ONNX Runtime's quantisation) on
    ONNX Runtime. ``normalise``: see :class:`OpenVinoSession` (its ``takes_frames`` says whether it took)."""
    if precision != "int8":
        try:
            return OpenVinoSession(model, threads, precision, normalise)
        except ImportError:
            pass
        except Exception as exc:  # noqa: BLE001 - a model OpenVINO cannot compile still runs
            log.info("features: OpenVINO cannot run this model (%s); using ONNX Runtime", str(exc).splitlines()[0])
    return CpuSession(model, threads)


META_KEY = "reframe-vj"  # the model's own metadata (a quantiser adds entries of its own beside it)


def with_metadata(model: bytes, meta: dict) -> bytes:
    """``model`` with ``meta`` (JSON values) in its metadata: a saved network that describes its input."""
    import onnx

    proto = onnx.load_from_string(model)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    return proto.SerializeToString()


def fit_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, size, size, 3) uint8: the centre box, resized (as they are when already so)."""
    if frames.shape[1:3] == (size, size):
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_CUBIC
    return np.stack([cv2.resize(center_crop(f), (size, size), interpolation=interp) for f in frames])


def prepare_input(frames: np.ndarray, size: int, mean, std) -> np.ndarray:
    """(B, H, W, 3) uint8 -> a centre-cropped, resized, normalised (B, 3, size, size) float32 batch."""
    frames = fit_frames(frames, size)
    m = np.asarray(mean, np.float32) * 255
    scale = 1.0 / (np.asarray(std, np.float32) * 255)
    return np.ascontiguousarray(((frames.astype(np.float32) - m) * scale).transpose(0, 3, 1, 2))


def stream_batches(extract: Callable[[np.ndarray], np.ndarray], batch: int, frames: Iterable[np.ndarray],
                   prefetch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``extract`` over a stream of frames in batches, decoding on a thread overlapped with inference.
    Yields (frames batch (B, H, W, 3) uint8, features (B, dim))."""
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    error: list[BaseException] = []
    stop = threading.Event()  # the consumer left early: the decoder stops too (and its ffmpeg with it)

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for f in frames:
                if not put(f):
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consumer side
            error.append(exc)
        finally:
            if stop.is_set() and hasattr(frames, "close"):
                frames.close()  # a generator's own cleanup (read_frames kills its ffmpeg) runs now
            put(None)

    threading.Thread(target=produce, name="decode", daemon=True).start()
    done = False
    try:
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
    finally:
        stop.set()
    if error:
        raise error[0]


class FeatureModel:
    """A feature network saved as an ONNX file (``vj.core.features.FeatureExtractor.save_onnx``) with its
    input in its metadata. A mosaic keeps the one that made its features, so a query gets the very same
    features; it loads in a fraction of a second and needs neither torch nor the model's code."""

    def __init__(self, path: str | Path, threads: int = 2, batch: int = 16, precision: str | None = None,
                 runtime: str = "auto"):
        """``precision``: run the model in another than it was saved for (an fp32 file in ``bf16``);
        ``runtime``: ``auto`` (:func:`feature_session`) or ``onnx`` (ONNX Runtime)."""
        import onnx

        self.path = Path(path)
        model = self.path.read_bytes()
        meta = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
        try:
            self.meta = json.loads(meta[META_KEY])
            self.size, self.dim = int(self.meta["size"]), int(self.meta["dim"])
            self.mean, self.std = self.meta["mean"], self.meta["std"]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{self.path}: not a feature model (its metadata lacks {exc})") from None
        self.backbone = self.meta.get("backbone", "?")
        self.precision = precision or self.meta.get("precision", "fp32")
        self.session = CpuSession(model, threads) if runtime == "onnx" else \
            feature_session(model, threads, self.precision, (self.mean, self.std))
        self._frames_in = getattr(self.session, "takes_frames", False)
        ran = getattr(self.session, "precision", "int8" if self.precision == "int8" else "fp32")
        self.runtime = f"{'openvino' if isinstance(self.session, OpenVinoSession) else 'onnx'} {ran}"
        self.batch = batch

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, dim) float32 features."""
        out = [self.session(self.prepare(frames[i:i + self.batch])) for i in range(0, len(frames), self.batch)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)

    def prepare(self, frames: np.ndarray) -> np.ndarray:
        """A batch as the session takes it: the frames at the network's size, normalised unless it does that."""
        return fit_frames(frames, self.size) if self._frames_in else prepare_input(frames, self.size, self.mean, self.std)

    def stream(self, frames: Iterable[np.ndarray], prefetch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return stream_batches(self, self.batch, frames, prefetch)
