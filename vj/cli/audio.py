"""``vj audio analyze``: a track's tempo, beats, bands and onsets, as the live show hears them."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from vj.core.runs import image_out

log = logging.getLogger("vj")


def add_parser(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("audio", help="analyse a track: tempo, beats, bands, onsets",
                       description="The show's audio analysis of a track: the beat tracker's tempo and beats, the "
                                   "three bands and their onsets, harmonic and percussive energy.",
                       epilog="examples:\n  vj audio analyze set.wav\n  vj audio analyze set.mp3 --json > beats.json\n"
                              "  vj audio analyze set.wav --plot analysis.png\n",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    asub = a.add_subparsers(dest="audio_cmd", required=True, metavar="{analyze}")
    an = asub.add_parser("analyze", help="tempo and beat times of a track (and a plot)",
                         description="Print the tempo and the beat times the live beat tracker finds in a track "
                                     "(any file ffmpeg reads, video included).",
                         epilog="examples:\n  vj audio analyze set.wav\n  vj audio analyze set.wav --json\n",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    an.add_argument("track", type=Path, help="an audio (or video) file")
    an.add_argument("--json", action="store_true", help='print {"bpm": float, "beats": [seconds, ...]} only')
    an.add_argument("--plot", type=image_out, help="draw the bands, onsets and beats over time to this image, .png "
                    ".jpg .webp or .tif (default: none)")
    an.set_defaults(func=cmd_analyze)


def cmd_analyze(args) -> int:
    from vj.audio import analyze_track, decode_audio

    if not args.track.exists():
        raise FileNotFoundError(f"{args.track}: no such file")
    result = analyze_track(decode_audio(args.track))
    if args.json:
        print(json.dumps({"bpm": result["bpm"], "beats": result["beats"]}))
    else:
        beats = result["beats"]
        if not beats:  # silence, a spoken word, a track shorter than the tracker's few seconds of listening
            print(f"{args.track.name}: no steady beat found (a live show follows tap tempo or Link instead)")
        else:
            print(f"{args.track.name}: {result['bpm']:.2f} BPM, {len(beats)} beats")
            print("beats (s): " + " ".join(f"{b:.3f}" for b in beats[:32]) + (" ..." if len(beats) > 32 else ""))
    if args.plot:
        plot(result, args.plot, args.track.name)
        log.info("wrote %s", args.plot)
    return 0


def plot(result: dict, out: Path, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vj.core.runs import atomic_write_bytes

    t, f = result["times"], result["features"]
    fig, axes = plt.subplots(3, 1, figsize=(12, 6), dpi=100, sharex=True)
    for name, color in (("low", "tab:red"), ("mid", "tab:green"), ("high", "tab:blue")):
        axes[0].plot(t, f[name], label=name, color=color, linewidth=0.8)
        hits = t[f[f"onset_{name}"] > 0]
        axes[1].vlines(hits, {"low": 2, "mid": 1, "high": 0}[name], {"low": 3, "mid": 2, "high": 1}[name],
                       color=color, linewidth=1)
    axes[0].set_ylabel("bands")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_yticks([0.5, 1.5, 2.5], ["high", "mid", "low"])
    axes[1].set_ylabel("onsets")
    axes[2].plot(t, f["percussive"], label="percussive", color="tab:orange", linewidth=0.8)
    axes[2].plot(t, f["harmonic"], label="harmonic", color="tab:purple", linewidth=0.8)
    axes[2].legend(loc="upper right", fontsize=8)
    for ax in axes:
        ax.vlines(result["beats"], *ax.get_ylim(), color="k", alpha=0.25, linewidth=0.8)
    axes[2].set_xlabel(f"seconds (beats: grey lines, {result['bpm']:.1f} BPM)")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(out).suffix.lstrip(".").lower())  # image_out let only what it can write in
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
