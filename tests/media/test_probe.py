"""ffprobe on real clips made by the real ffmpeg (the parser's own cases: test_probe_parse.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from media.errors import MediaError, ProbeError
from media.probe import ffprobe_argv, input_name, input_options, probe, unsigned
from media.probe_model import Probe

pytestmark = pytest.mark.slow

VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast"]


class Clips:
    """Makes each clip once per session (ffmpeg is the slow part)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[str, Path] = {}

    def make(self, name: str, *args: str) -> Path:
        if name not in self.made:
            out = self.root / name
            subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True, timeout=60)
            self.made[name] = out
        return self.made[name]

    def normal(self) -> Path:
        return self.make(
            "normal.mp4", *VIDEO, *AUDIO, "-t", "2", *X264, "-c:a", "aac", "-metadata:s:a:0", "language=eng"
        )


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


# ---- real clips ------------------------------------------------------------------------------


async def test_normal_clip(clips: Clips) -> None:
    path = clips.normal()
    p = await probe(str(path))
    assert "mp4" in p.format_name
    assert p.duration_s == pytest.approx(2.0, abs=0.1)
    assert p.size_bytes == path.stat().st_size
    assert p.bit_rate and p.bit_rate > 0
    v = p.video
    assert v is not None
    assert (v.codec, v.width, v.height) == ("h264", 320, 240)
    assert (v.fps, v.fps_fraction) == (25.0, "25/1")
    assert (v.rotation, v.pix_fmt, v.bit_depth, v.variable_frame_rate) == (0, "yuv420p", 8, False)
    assert (v.display_width, v.display_height) == (320, 240)
    assert len(p.audio) == 1
    a = p.audio[0]
    assert (a.codec, a.channels, a.sample_rate, a.language) == ("aac", 1, 48000, "eng")
    # stored with the title as JSON and read back
    assert Probe.from_dict(p.to_dict()) == p


async def test_video_only(clips: Clips) -> None:
    p = await probe(str(clips.make("video.mp4", *VIDEO, "-t", "1", *X264)))
    assert p.video is not None and p.audio == ()


async def test_audio_only_default_language(clips: Clips) -> None:
    p = await probe(str(clips.make("audio.m4a", *AUDIO, "-t", "1", "-c:a", "aac")))
    assert p.video is None
    assert [(a.codec, a.language) for a in p.audio] == [("aac", "und")]


async def test_cover_art_is_not_video(clips: Clips) -> None:
    path = clips.make(
        "cover.m4a",
        *AUDIO,
        "-f", "lavfi", "-i", "testsrc2=size=64x64",
        "-t", "1", "-map", "0:a", "-map", "1:v", "-frames:v", "1",
        "-c:a", "aac", "-c:v", "png", "-disposition:v", "attached_pic",
    )  # fmt: skip
    p = await probe(str(path))
    assert p.video is None
    assert len(p.audio) == 1
    assert p.extra.get("cover_art") is True


async def test_several_audio_languages(clips: Clips) -> None:
    path = clips.make(
        "langs.mkv",
        *VIDEO, *AUDIO, *AUDIO,
        "-t", "1", "-map", "0", "-map", "1", "-map", "2", *X264, "-c:a", "libopus",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre",
        "-metadata:s:a:1", "title=Français",
    )  # fmt: skip
    p = await probe(str(path))
    assert [(a.language, a.title) for a in p.audio] == [("eng", None), ("fre", "Français")]


def _rotated(clips: Clips, ccw: int) -> Path:
    """A copy of video.mp4 whose display matrix turns it `ccw` degrees counter-clockwise."""
    src = clips.make("video.mp4", *VIDEO, "-t", "1", *X264)
    name = f"rot{ccw}.mp4"
    try:  # ffmpeg >= 6
        return clips.make(name, "-display_rotation", str(ccw), "-i", str(src), "-c", "copy")
    except subprocess.CalledProcessError:
        # ffmpeg 5.1 (here) turns the legacy tag into a matrix of the same counter-clockwise angle
        # (the opposite of what the tag meant before 5.0), so write the angle we want.
        return clips.make(name, "-i", str(src), "-c", "copy", "-metadata:s:v", f"rotate={ccw % 360}")


@pytest.mark.parametrize(
    ("ccw", "rotation"),
    [
        pytest.param(-90, 90, id="phone-portrait"),  # what a phone held upright writes
        pytest.param(90, 270, id="ccw-90"),
        pytest.param(180, 180, id="upside-down"),
    ],
)
async def test_rotated(clips: Clips, ccw: int, rotation: int) -> None:
    v = (await probe(str(_rotated(clips, ccw)))).video
    assert v is not None
    assert v.rotation == rotation
    assert (v.width, v.height) == (320, 240)  # the coded size stays
    swapped = rotation in (90, 270)
    assert (v.display_width, v.display_height) == ((240, 320) if swapped else (320, 240))


async def test_10_bit(clips: Clips) -> None:
    p = await probe(str(clips.make("10bit.mp4", *VIDEO, "-t", "1", *X264, "-pix_fmt", "yuv420p10le")))
    assert p.video is not None
    assert (p.video.pix_fmt, p.video.bit_depth) == ("yuv420p10le", 10)


async def test_422(clips: Clips) -> None:
    p = await probe(str(clips.make("422.mp4", *VIDEO, "-t", "1", *X264, "-pix_fmt", "yuv422p")))
    assert p.video is not None
    assert (p.video.pix_fmt, p.video.bit_depth) == ("yuv422p", 8)


async def test_variable_frame_rate(clips: Clips) -> None:
    # first second at 50 fps, then every other frame: r_frame_rate 50/1, average ~37.9
    path = clips.make(
        "vfr.mp4",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=50", "-t", "2",
        "-vf", "setpts='if(lt(N,50),N/50/TB,(50+(N-50)*2)/50/TB)'", "-fps_mode", "vfr", *X264,
    )  # fmt: skip
    v = (await probe(str(path))).video
    assert v is not None and v.variable_frame_rate
    assert 30 < v.fps < 45


async def test_odd_file_names(clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a leading "-" must not read as an option, a ":" not as a protocol
    for name in ("-dash.mp4", "a:b.mp4"):
        link = tmp_path / name
        link.symlink_to(clips.normal())
        p = await probe(str(link))
        assert p.video is not None
    monkeypatch.chdir(tmp_path)
    assert (await probe("-dash.mp4")).video is not None


# ---- failures --------------------------------------------------------------------------------


async def test_truncated_mp4_without_faststart_fails(clips: Clips, tmp_path: Path) -> None:
    """ffmpeg writes the index (moov) last, so the first half of a file has none: unusable."""
    data = clips.normal().read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProbeError, match="moov atom not found"):
        await probe(str(cut))


async def test_truncated_faststart_mp4_still_probes(clips: Clips, tmp_path: Path) -> None:
    """With the index first (+faststart) ffprobe reads the header alone and reports the full
    duration: probing does not prove a file is whole; the transcode finds out."""
    src = clips.make("faststart.mp4", "-i", str(clips.normal()), "-c", "copy", "-movflags", "+faststart")
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    p = await probe(str(cut))
    assert p.video is not None
    assert p.duration_s == pytest.approx(2.0, abs=0.1)
    assert p.size_bytes == len(data) // 2


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda d: _write(d / "zero.mp4", b""), "zero-length file", id="zero-bytes"),
        pytest.param(
            lambda d: _write(d / "noise.bin", bytes((i * 7919 + 13) % 251 for i in range(100_000))),
            "not a media file (ffprobe: Invalid data found when processing input)",
            id="random-bytes",
        ),
        pytest.param(
            lambda d: _write(d / "notes.txt", b"hello\nthis is text\n"),
            "not a media file (ffprobe: Invalid data found when processing input)",
            id="text-file",
        ),
        # the .mp4 name makes ffprobe try the MP4 demuxer, which finds no index
        pytest.param(
            lambda d: _write(d / "text.mp4", b"hello\nthis is text\n"),
            "not a playable MP4 (ffprobe: moov atom not found): truncated or incomplete file?",
            id="text-named-mp4",
        ),
        pytest.param(lambda d: str(d / "missing.mp4"), "file not found", id="missing"),
        pytest.param(lambda d: str(d), "a directory, not a media file", id="directory"),
    ],
)
async def test_probe_errors(tmp_path: Path, make: Callable[[Path], str], reason: str) -> None:
    source = make(tmp_path)
    with pytest.raises(ProbeError) as exc_info:
        await probe(source)
    err = exc_info.value
    assert err.reason == reason
    assert err.path == source
    assert isinstance(err, MediaError) and err.code == "probe_failed"
    assert "\n" not in str(err)


async def test_timeout_kills_ffprobe(tmp_path: Path) -> None:
    fifo = tmp_path / "never.mp4"
    os.mkfifo(fifo)  # nobody writes: ffprobe waits forever
    with pytest.raises(ProbeError, match="no answer within 0.5 s"):
        await probe(str(fifo), timeout_s=0.5)


async def test_ffprobe_missing(clips: Clips) -> None:
    with pytest.raises(ProbeError, match="is not installed"):
        await probe(str(clips.normal()), ffprobe="/nonexistent/ffprobe")


async def test_unreachable_url() -> None:
    with pytest.raises(ProbeError) as exc_info:
        await probe("http://127.0.0.1:9/movie.mp4", timeout_s=20)
    assert exc_info.value.reason.startswith("ffprobe: ")


def test_argv() -> None:
    assert ffprobe_argv("/a/b.mp4") == [
        "ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "file:/a/b.mp4",
    ]  # fmt: skip
    assert ffprobe_argv("https://x/y.mp4")[-1] == "https://x/y.mp4"


def test_what_a_url_reader_reports_never_carries_a_presigned_urls_secrets() -> None:
    v4 = (
        "https://s3.example.com/b/sources/t/original.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20261207%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261207T000000Z"
        "&X-Amz-Expires=43200&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok3n&X-Amz-Signature=abc123"
    )
    v2 = "http://127.0.0.1:9000/b/k.mp4?AWSAccessKeyId=testing&Signature=lluY%3D&Expires=1796659259"
    out = unsigned(f"{v4}: Server returned 403 Forbidden (access denied)\n[http @ 0x1] {v2}: Connection refused")
    for secret in ("AKIA", "tok3n", "abc123", "lluY"):
        assert secret not in out, out
    assert "X-Amz-Signature=...: Server returned 403 Forbidden" in out
    assert "Signature=...&Expires=1796659259: Connection refused" in out
    assert unsigned("/data/sources/t/original.mp4: No such file or directory") == (
        "/data/sources/t/original.mp4: No such file or directory"
    )
    # ffmpeg and ffprobe read a URL with a timeout and reconnects; a path stays a file.
    assert input_options("http://h/k") == [
        "-rw_timeout", "20000000", "-reconnect", "1", "-reconnect_on_network_error", "1", "-reconnect_delay_max", "2",
    ]  # fmt: skip
    assert input_options("/a/b.mp4") == [] and input_name("/a/b.mp4") == "file:/a/b.mp4"
