"""The source adjustments listed in the model, from literal probes: no ffmpeg needed."""

from __future__ import annotations

import dataclasses

import pytest

from media.probe_model import AudioStream, Probe, VideoStream
from transcoder.adjustments import source_adjustments
from transcoder.ladder import plan_ladder


def _probe(
    *, start: float = 0.0, video_at: float | None = 0.0, audio_at: float | None = 0.0, order: str = "progressive"
) -> Probe:
    video = (
        VideoStream(
            index=0, codec="h264", width=1280, height=720, fps=25.0, fps_fraction="25/1", rotation=0,
            pix_fmt="yuv420p", bit_depth=8, variable_frame_rate=False, start_time_s=start + video_at,
            field_order=order,
        )
        if video_at is not None
        else None
    )  # fmt: skip
    audio = (
        (
            AudioStream(
                index=1, codec="aac", channels=2, sample_rate=48000, language="eng", start_time_s=start + audio_at
            ),
        )
        if audio_at is not None
        else ()
    )
    return Probe(
        format_name="mpegts", duration_s=60.0, size_bytes=1, bit_rate=None, video=video, audio=audio, start_time_s=start
    )


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param(_probe(), (), id="nothing-to-do"),
        pytest.param(_probe(start=0.021, video_at=0.0, audio_at=0.021), (), id="encoder-delay-is-not-news"),
        pytest.param(_probe(start=3600.0), ("timeline shifted by -3600.0 s",), id="offset-3600"),
        pytest.param(_probe(start=1.4), ("timeline shifted by -1.4 s",), id="mpegts-1.4"),
        pytest.param(_probe(start=-0.5), ("timeline shifted by 0.500 s",), id="negative-start"),
        pytest.param(
            _probe(start=3601.4, audio_at=0.979),
            ("timeline shifted by -3601.4 s", "audio padded with 0.979 s of silence"),
            id="late-audio",
        ),
        pytest.param(
            _probe(start=10.0, video_at=2.0),
            ("timeline shifted by -10.0 s", "video held on its first frame for 2.0 s"),
            id="late-video",
        ),
        pytest.param(_probe(order="tt"), ("deinterlaced (tff)",), id="tt"),
        pytest.param(_probe(order="bb"), ("deinterlaced (bff)",), id="bb"),
        pytest.param(_probe(order="tb"), ("deinterlaced (tb)",), id="tb-as-probed"),
        pytest.param(
            _probe(start=3600.0, order="tt"), ("timeline shifted by -3600.0 s", "deinterlaced (tff)"), id="both"
        ),
        pytest.param(
            _probe(start=3600.0, video_at=None, audio_at=0.0), ("timeline shifted by -3600.0 s",), id="audio-only"
        ),
    ],
)
def test_source_adjustments(probe: Probe, expected: tuple[str, ...]) -> None:
    assert source_adjustments(probe, plan_ladder(probe)) == expected


def test_only_the_audio_stream_used_counts() -> None:
    probe = _probe(start=5.0)
    late_second = AudioStream(index=2, codec="aac", channels=2, sample_rate=48000, language="fra", start_time_s=9.0)
    probe = dataclasses.replace(probe, audio=(*probe.audio, late_second))
    assert source_adjustments(probe, plan_ladder(probe)) == ("timeline shifted by -5.0 s",)
