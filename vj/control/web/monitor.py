"""The training monitor's data: every genre run of a runs folder, read from its files (config, checkpoint
counters are not read: the log and the samples say where a run is, and reading never touches a file)."""
from __future__ import annotations

import time
from pathlib import Path

from vj.core.config import read_toml
from vj.core.runs import GanRun, log_columns, log_tail


CHART_POINTS = 600  # the page's chart is 300 px wide: a long run's log comes as bin means, not 10^5 rows


def read_log(run: GanRun) -> dict:
    """The run's log.csv as columns (epoch, losses, D outputs, img/s, KID when the run measures it)."""
    return {"genre": run.genre, "columns": log_columns(run.log, CHART_POINTS)}


def tail_rows(path: Path, size: int = 1 << 18) -> list[dict]:
    """The log's last whole rows (about ``size`` bytes: a few thousand epochs) as dicts of strings: the page
    asks every 5 s, and an overnight run of short epochs logs 10^5-10^6 rows."""
    try:
        header, _, lines = log_tail(path, size)
    except OSError:
        return []
    rows = [line.strip().split(",") for line in lines]
    return [dict(zip(header, r)) for r in rows if len(r) == len(header) and r[0].isdigit()]  # a torn row: left out


def summary(run: GanRun) -> dict:
    """Where a run is: epoch and step, img/s, ETA, its latest sample, KID, and whether it is still writing."""
    out: dict = {"genre": run.genre}
    try:
        cfg = read_toml(run.config)
    except ValueError:
        cfg = {}
    out["epochs"] = cfg.get("epochs", 0)
    out["hours"] = cfg.get("hours", 0)
    out["until"] = cfg.get("until", "")
    out["size"] = cfg.get("size")
    out["arch"] = cfg.get("arch", "dcgan")
    kid_epochs, kid_minutes = cfg.get("kid_epochs", 0), cfg.get("kid_minutes", 0)
    out["kid_every"] = f"{kid_epochs} epochs" if kid_epochs else f"{kid_minutes:g} min" if kid_minutes else "off"
    rows = tail_rows(run.log)
    last = rows[-1] if rows else {}
    out["epoch"] = int(float(last.get("epoch") or 0))
    out["step"] = int(float(last.get("step") or 0))
    out["images_per_s"] = float(last.get("images_per_s") or 0)
    kids = [r["kid"] for r in rows if r.get("kid")]  # the latest measurement (most epochs have none)
    out["kid"] = float(kids[-1]) if kids else None
    elapsed = float(last.get("elapsed_s") or 0)
    if out["epochs"] and out["epoch"]:
        per_epoch = elapsed / max(1, out["epoch"])
        out["eta_s"] = max(0.0, (out["epochs"] - out["epoch"]) * per_epoch)
    samples = run.sample_files()
    out["samples"] = len(samples)
    out["latest"] = samples[-1].name if samples else None
    stamps = [p.stat().st_mtime for p in (run.log, run.ckpt, samples[-1] if samples else run.ckpt) if p.exists()]
    out["updated_s_ago"] = time.time() - max(stamps) if stamps else None
    out["active"] = out["updated_s_ago"] is not None and out["updated_s_ago"] < 120
    return out


def runs_summary(runs: Path) -> dict:
    folder = Path(runs) / "gan"
    genres = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return {"runs": str(runs), "genres": [summary(GanRun(folder / g)) for g in genres]}
