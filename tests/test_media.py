"""The one media module: many containers and codecs, sampling, crops, and bad files named clearly."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ffmpeg, lavfi_video
from vj.core.media import MediaError, VideoWriter, count_frames, find_media, fit, probe, read_frames, read_image


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    return {
        "mp4": lavfi_video(d / "a.mp4"),
        "webm_vp9": lavfi_video(d / "b.webm", extra=("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8")),
        "mkv": lavfi_video(d / "c.mkv", src="mandelbrot"),
        "mov": lavfi_video(d / "d.mov", src="smptebars"),
        "10bit": lavfi_video(d / "e.mp4", extra=("-pix_fmt", "yuv420p10le", "-c:v", "libx264")),
        "audio_24fps": lavfi_video(d / "f.mp4", rate=24, pre=("-f", "lavfi", "-i", "sine=frequency=440"),
                                   extra=("-c:a", "aac", "-shortest")),
        "60fps": lavfi_video(d / "g.mp4", rate=60),
    }


@pytest.mark.parametrize("kind", ["mp4", "webm_vp9", "mkv", "mov", "10bit", "audio_24fps", "60fps"])
def test_reads_every_format_at_the_asked_rate_and_size(formats, kind):
    frames = list(read_frames(formats[kind], fps=10, size=32))
    assert len(frames) == 10  # 1 s at 10 fps, whatever the source rate
    assert all(f.shape == (32, 32, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[0].std() > 5  # real picture, not black


def test_portrait_rotation_is_applied(tmp_path):
    src = lavfi_video(tmp_path / "land.mp4", size="160x90")
    ffmpeg("-display_rotation", "90", "-i", str(src), "-c", "copy", str(tmp_path / "portrait.mp4"))
    info = probe(tmp_path / "portrait.mp4")
    assert (info.width, info.height) == (90, 160)
    frame = next(read_frames(tmp_path / "portrait.mp4", size=None))
    assert frame.shape == (160, 90, 3)


def test_center_crop_keeps_the_middle_and_letterbox_keeps_everything(tmp_path):
    # left half red, right half blue, a green bar in the middle third
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :80, 0] = 255
    frame[:, 80:, 2] = 255
    path = tmp_path / "split.mp4"
    with VideoWriter(path, 10, (160, 90)) as w:
        for _ in range(5):
            w.write(frame)
    center = next(read_frames(path, size=64, crop="center"))
    boxed = next(read_frames(path, size=64, crop="letterbox"))
    assert center.shape == boxed.shape == (64, 64, 3)
    assert center[:, 0, 0].mean() > 200 and center[:, -1, 2].mean() > 200  # crop is 90x90 of the middle
    assert boxed[0, 32].max() < 20 and boxed[32, 2, 0] > 200  # black bars top/bottom, image edge to edge


def test_face_crop_finds_the_face(tmp_path):
    from skimage import data

    astronaut = data.astronaut()  # 512x512, face upper middle-left
    wide = np.zeros((512, 912, 3), np.uint8)
    wide[:, 400:] = astronaut  # face well off-centre
    path = tmp_path / "performer.mp4"
    with VideoWriter(path, 5, (912, 512)) as w:
        for _ in range(3):
            w.write(wide)
    face = next(read_frames(path, size=64, crop="face"))
    centre = next(read_frames(path, size=64, crop="center"))
    assert face.shape == (64, 64, 3)
    skin = face[28:36, 28:36].reshape(-1, 3).mean(0)  # the crop's middle is her face: light skin, R > G > B
    assert skin[0] > 180 and skin[1] > 140 and skin[0] > skin[1] > skin[2], skin
    assert (face[:32, :16].max(2) < 10).mean() < 0.02  # a tight square on her: none of the black left side
    suit = centre[28:36, 28:36].reshape(-1, 3).mean(0)  # the centre crop's middle is the orange suit
    assert suit[1] < 130 and (centre.max(2) < 10).mean() > 0.3


@pytest.mark.parametrize("content,reason", [(b"", "empty"), (b"\x00\x01garbage" * 500, "not a readable video"),
                                            (b"just some text\n", "")])
def test_bad_files_raise_a_short_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError) as err:
        list(read_frames(path, fps=5, size=16))
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_video_is_rejected_or_partial(tmp_path):
    good = lavfi_video(tmp_path / "good.mp4", seconds=2)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MediaError):  # moov atom is at the end unless faststart: nothing decodes
        list(read_frames(cut, fps=5, size=16))


def test_writer_streams_exact_frame_count_and_find_media(tmp_path):
    frames = [np.full((36, 64, 3), i * 20, np.uint8) for i in range(7)]
    with VideoWriter(tmp_path / "sub" / "x.mp4", 30, (64, 36)) as w:
        for f in frames:
            w.write(f)
    assert count_frames(tmp_path / "sub" / "x.mp4") == 7
    for wrong in ("x.gif", "x.png", "x"):  # refused before the work, not after it by ffmpeg
        with pytest.raises(ValueError, match="videos are written as H.264 in .m4v, .mkv, .mov, .mp4"):
            VideoWriter(tmp_path / wrong, 30, (64, 36))
    (tmp_path / "notes.txt").write_text("x")
    assert find_media([tmp_path]) == [tmp_path / "sub" / "x.mp4"]
    with pytest.raises(MediaError, match="no such file"):
        find_media([tmp_path / "missing"])


def test_find_media_leaves_out_the_runs_folder_inside_the_loops_folder(tmp_path, caplog):
    """A VJ who trains from inside the loops folder gets runs/ there: its clips and sample PNGs must not
    become the next run's input. The runs folder given itself, or a file in it, is read as asked."""
    loops = tmp_path / "loops"
    clip, walk = loops / "a.mp4", loops / "runs" / "gan" / "g" / "clips" / "walk.mp4"
    sample = loops / "runs" / "gan" / "g" / "samples" / "epoch_00001.png"
    for f in (clip, walk, sample):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    both = {".mp4", ".png"}
    assert find_media([loops], both) == [clip, walk, sample]  # nothing to skip: everything, as before
    with caplog.at_level("INFO"):
        assert find_media([loops], both, skip=[loops / "runs"]) == [clip]
    assert "left out 2 files under" in caplog.text
    assert find_media([walk.parent], both, skip=[loops / "runs"]) == [walk]  # a mosaic of the learning clips
    assert find_media([loops / "runs"], both, skip=[loops / "runs"]) == [walk, sample]
    assert find_media([loops, walk], both, skip=[loops / "runs"]) == [clip, walk]  # a file named: kept


def test_find_media_follows_linked_folders_once_and_skips_hidden_ones(tmp_path):
    """A loops folder that links in a library on another drive is read through the link; a link back to a
    parent is not a loop; macOS's hidden folders and AppleDouble files are not media."""
    library, loops = tmp_path / "drive" / "set1", tmp_path / "loops"
    for f in (library / "a.mp4", loops / "b.mp4", loops / ".Trashes" / "c.mp4", loops / "._b.mp4"):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    (loops / "set1").symlink_to(library, target_is_directory=True)
    (library / "back").symlink_to(loops, target_is_directory=True)
    assert find_media([loops]) == [loops / "b.mp4", loops / "set1" / "a.mp4"]


def test_writer_keeps_colours(tmp_path):
    """Frames reach x264 as YUV converted by OpenCV: a round trip keeps saturated and grey patches."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [230, 180, 150], [20, 20, 20],
                        [255, 255, 255], [0, 0, 0]], np.uint8)
    frame = np.repeat(np.repeat(colours[None], 64, 0), 32, 1)           # 8 patches of 32x64
    with VideoWriter(tmp_path / "c.mp4", 10, (256, 64)) as w:
        for _ in range(3):
            w.write(frame)
    back = next(read_frames(tmp_path / "c.mp4", size=(256, 64), crop="letterbox")).astype(int)
    for i, c in enumerate(colours):
        patch = back[8:-8, i * 32 + 8:i * 32 + 24].reshape(-1, 3).mean(0)
        assert np.abs(patch - c).max() < 6, (c, patch)


def test_read_image_and_fit(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((50, 100, 3), 200, np.uint8)).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png", size=(20, 10)).shape == (10, 20, 3)
    assert fit(np.zeros((50, 100, 3), np.uint8), 32, "letterbox").shape == (32, 32, 3)
    (tmp_path / "b.png").write_bytes(b"nope")
    with pytest.raises(MediaError, match="not a readable image"):
        read_image(tmp_path / "b.png")


def test_a_big_photo_reads_small_like_its_full_decode_and_a_huge_one_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    yy, xx = np.mgrid[0:1600, 0:2400]
    photo = np.stack([xx % 256, yy % 256, (xx + yy) // 16 % 256], -1).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.jpg", quality=92)
    for size, crop in ((64, "center"), ((160, 90), "letterbox"), (300, "center")):
        small = read_image(tmp_path / "p.jpg", size, crop)  # decoded at a fraction of the scale
        full = fit(read_image(tmp_path / "p.jpg"), size, crop)
        assert small.shape == full.shape
        assert np.abs(small.astype(int) - full).mean() < 4, (size, crop)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL's bomb limit, made small
    with pytest.raises(MediaError, match="too large to read"):
        read_image(tmp_path / "p.jpg", 64)


def test_unreadable_files_are_said_a_few_at_a_time_and_summed_up_in_one_line(caplog):
    from pathlib import Path

    from vj.core.media import SKIPS_SAID, note_unreadable, skip_report

    skipped: list = []
    with caplog.at_level("WARNING"):
        for i in range(40):
            note_unreadable(skipped, Path(f"b{i:02d}.mp4"), "not a readable video")
    assert len(skipped) == 40 and caplog.text.count("skipping") == SKIPS_SAID
    line = skip_report([Path("a.mp4"), Path("p.png"), Path("q.jpg")], skipped)
    assert line.startswith("used 1 video and 2 images, skipped 40: b00.mp4 (not a readable video)")
    assert line.endswith("and 35 more") and "b05.mp4" not in line
    assert skip_report([], skipped[:1]) == "skipped 1: b00.mp4 (not a readable video)"


def test_images_are_written_in_the_format_their_name_says_and_other_names_are_refused(tmp_path):
    import argparse

    from PIL import Image

    from conftest import run_vj
    from vj.core.runs import image_out, save_image

    img = np.zeros((20, 30, 3), np.uint8)
    for name, kind in (("a.png", "PNG"), ("a.JPG", "JPEG"), ("a.webp", "WEBP"), ("a.tif", "TIFF")):
        save_image(tmp_path / name, img)
        with Image.open(tmp_path / name) as im:  # a PNG named .jpg was what a poster --out x.jpg wrote
            assert im.format == kind and im.size == (30, 20)
    for name in ("a.gif", "a.svg", "a"):
        with pytest.raises(ValueError, match="images are written as .png, .jpg, .webp or .tif"):
            save_image(tmp_path / name, img)
        with pytest.raises(argparse.ArgumentTypeError):
            image_out(name)
    proc = run_vj("mosaic", "poster", "m", "--out", str(tmp_path / "p.txt"))  # refused before any work
    assert proc.returncode == 2 and "images are written as .png, .jpg, .webp or .tif" in proc.stderr
