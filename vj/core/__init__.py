"""The foundation every part stands on; it imports nothing of reframe-vj above it.

    media   the one video module: probe, read frames at N fps, crop/resize, write mp4 streaming
    config  the one loader and validator of settings objects (TOML, --set, unknown keys named)
    runs    the one owner of run-directory names and layout (gan and mosaic write, the engine reads)
    onnx    export a network once, open a CPU session (features, live generators)
    features  ImageNet feature space (EfficientNet-Lite0 offline): the mosaic's map and the GAN's KID curve
    progress  bars on a terminal, plain lines in a log file
    priority  lower a worker thread's CPU priority (decoders, previews, sample writers)

gan/ and mosaic/ import only this package from vj/; an import-linter contract (pyproject.toml) keeps it so.
"""
