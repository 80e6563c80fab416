"""Optional outputs: NDI (cyndilib), Syphon (macOS), Spout (Windows), virtual camera (pyvirtualcam).

Each is an extra behind a guard: ``open_output`` raises ``OutputUnavailable`` with one line that says
why it cannot run here and how to get it; the caller logs it and the show goes on with the others.
"""
from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np


class OutputUnavailable(RuntimeError):
    pass


def _need(module: str, what: str, extra: str, platform: str | None = None):
    """Import an optional output's module, or say in one line why it cannot run and how to get it."""
    if platform and not sys.platform.startswith(platform):
        names = {"darwin": "macOS", "win32": "Windows"}
        raise OutputUnavailable(f"{what} output runs only on {names.get(platform, platform)} "
                                f"(this is {sys.platform})")
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise OutputUnavailable(f"{what} output needs {module}: pip install 'reframe-vj[{extra}]'") from None


class NdiOutput:
    """Sends frames as an NDI source named ``name`` (RGBA; NDI compresses on the wire)."""

    def __init__(self, name: str, size: tuple[int, int], fps: float):
        _need("cyndilib", "NDI", "ndi")
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper.ndi_structs import FourCC

        self.sender = Sender(name)
        vf = VideoSendFrame()
        vf.set_resolution(*size)
        vf.set_frame_rate(Fraction(fps).limit_denominator(1001))
        vf.set_fourcc(FourCC.RGBA)
        self.sender.set_video_frame(vf)
        self.sender.open()
        w, h = size
        self._rgba = np.full((h, w, 4), 255, np.uint8)

    def write(self, frame: np.ndarray, t: float) -> None:
        self._rgba[..., :3] = frame
        self.sender.write_video(self._rgba.ravel())

    def close(self) -> None:
        self.sender.close()


class SyphonOutput:
    def __init__(self, name: str, size: tuple[int, int], fps: float):
        syphon = _need("syphon", "Syphon", "syphon", "darwin")
        from syphon.utils.numpy import copy_image_to_mtl_texture  # pragma: no cover - macOS only

        self.server = syphon.SyphonMetalServer(name)  # pragma: no cover
        self._copy = copy_image_to_mtl_texture  # pragma: no cover
        from syphon.utils.raw import create_mtl_texture  # pragma: no cover

        self.texture = create_mtl_texture(self.server.device, *size)  # pragma: no cover

    def write(self, frame, t):  # pragma: no cover - macOS only
        rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
        self._copy(rgba, self.texture)
        self.server.publish_frame_texture(self.texture)

    def close(self):  # pragma: no cover
        self.server.stop()


class SpoutOutput:
    def __init__(self, name: str, size: tuple[int, int], fps: float):
        spout = _need("SpoutGL", "Spout", "spout", "win32")
        self.sender = spout.SpoutSender()  # pragma: no cover - Windows only
        self.sender.setSenderName(name)  # pragma: no cover
        self.size = size  # pragma: no cover

    def write(self, frame, t):  # pragma: no cover - Windows only
        from OpenGL import GL

        rgba = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
        self.sender.sendImage(rgba, *self.size, GL.GL_RGBA, False, 0)

    def close(self):  # pragma: no cover
        self.sender.releaseSender()


class VirtualCamOutput:
    """A virtual webcam (OBS Virtual Camera, v4l2loopback, ...) for video-call and streaming apps."""

    def __init__(self, name: str, size: tuple[int, int], fps: float):
        pyvirtualcam = _need("pyvirtualcam", "virtual camera", "vcam")
        try:
            self.cam = pyvirtualcam.Camera(width=size[0], height=size[1], fps=fps)
        except RuntimeError as exc:
            raise OutputUnavailable(f"virtual camera unavailable: {exc}".splitlines()[0]) from None

    def write(self, frame, t):
        self.cam.send(frame)

    def close(self):
        self.cam.close()


KINDS = {"ndi": NdiOutput, "syphon": SyphonOutput, "spout": SpoutOutput, "vcam": VirtualCamOutput}


def open_output(kind: str, name: str, size: tuple[int, int], fps: float):
    return KINDS[kind](name, size, fps)
