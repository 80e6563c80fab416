"""Outputs: where composed frames go. Each has ``write(frame, t)`` and ``close()``.

The window and video files are built in; NDI, Syphon, Spout and the virtual camera are optional extras
imported only when asked for (see ``vj.outputs.platform``).
"""
