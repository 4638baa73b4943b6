"""Per-title ladders: the choice from the complexity samples (pure, so tables of samples), the
setting, and a real small encode through the CLI and the worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from media import keys
from media.backend import open_storage
from media.probe import probe as probe_file
from media.probe_model import Probe
from packager.model import Presentation
from server.commands.titles import ladder_line
from server.settings import ConfigError, Settings
from tests.transcoder.test_ingest_cli import run_cli
from tests.transcoder.test_ladder import probe, video
from transcoder import chunks, per_title
from transcoder.ladder import STANDARD_RUNGS, Rung, plan_ladder, plan_rungs
from transcoder.per_title import Sample, choose_caps, sampled_rungs, span_starts
from transcoder.pipeline import check_presentation

FPS = Fraction(30)
RUNGS_1080 = plan_rungs(1920, 1080, FPS)  # v1080 5 Mb/s, v720 3, v480 1.2, v360 0.7
TABLE = {r.id: r.video_bitrate for r in RUNGS_1080}


def samples(rungs: tuple[Rung, ...], bpp: dict[str, float], spans: int = 3) -> list[Sample]:
    """Samples at `rungs`' sizes whose bits give exactly `bpp` per rung id."""
    out = []
    for i in range(spans):
        for r in rungs:
            out.append(
                Sample(
                    at_s=i * 3.0,
                    rung=r.id,
                    width=r.width,
                    height=r.height,
                    frames=30,
                    bits=round(bpp[r.id] * r.width * r.height * 30),
                )  # fmt: skip
            )
    return out


def at(rung_id: str) -> Rung:
    return next(r for r in RUNGS_1080 if r.id == rung_id)


def test_sampled_rungs_are_the_lowest_and_a_middle_one() -> None:
    assert [r.id for r in sampled_rungs(RUNGS_1080)] == ["v720", "v360"]
    assert [r.id for r in sampled_rungs(plan_rungs(640, 360, FPS))] == ["v360"]
    assert sampled_rungs(()) == ()


def test_spans_spread_over_the_length_and_short_for_a_short_source() -> None:
    starts, length = span_starts(60.0, 3, 1.0)
    assert length == 1.0 and starts == [9.5, 29.5, 49.5]
    starts, length = span_starts(1.5, 3, 1.0)
    assert length == pytest.approx(0.5) and starts == pytest.approx([0.0, 0.5, 1.0])


def test_low_complexity_gets_lower_caps_than_the_table_and_keeps_switchable_rungs() -> None:
    # a slide: few bits at constant quality
    measured = samples(sampled_rungs(RUNGS_1080), {"v720": 0.01, "v360": 0.02})
    caps = choose_caps(RUNGS_1080, measured, FPS)
    assert caps, "a choice"
    # the top and the bottom stay; the lowest keeps the table (its first segment cannot wait
    # for the measurement), the others come down, never below the kept floor
    assert "v1080" in caps and caps["v360"] == TABLE["v360"]
    assert all(caps[k] < TABLE[k] for k in caps if k != "v360"), caps
    assert all(caps[k] >= per_title.KEPT_FLOOR_FRACTION * TABLE[k] for k in caps), caps
    # each kept rung is worth a switch from the next by what it needs
    needs = [need for r, need in per_title.rung_needs(RUNGS_1080, measured, FPS) if r.id in caps]
    assert all(hi >= per_title.SWITCH_RATIO * lo for hi, lo in zip(needs, needs[1:], strict=False)), needs


def test_high_complexity_is_capped_at_the_table() -> None:
    # noise: more bits than the table at constant quality, the table is the ceiling
    caps = choose_caps(RUNGS_1080, samples(sampled_rungs(RUNGS_1080), {"v720": 0.5, "v360": 0.6}), FPS)
    assert caps == TABLE


def test_more_complexity_never_lowers_a_cap() -> None:
    low = choose_caps(RUNGS_1080, samples(sampled_rungs(RUNGS_1080), {"v720": 0.03, "v360": 0.04}), FPS)
    mid = choose_caps(RUNGS_1080, samples(sampled_rungs(RUNGS_1080), {"v720": 0.06, "v360": 0.08}), FPS)
    assert all(mid[k] >= low[k] for k in low.keys() & mid.keys())
    assert mid["v1080"] > low["v1080"]


def test_rungs_too_close_to_a_neighbour_are_dropped() -> None:
    # bpp falling steeply with size: v720 would be within 1.4x of v1080, not worth a switch
    wanted = {"v720": 0.08, "v360": 0.2}
    caps = choose_caps(RUNGS_1080, samples(sampled_rungs(RUNGS_1080), wanted), FPS)
    assert list(caps) == ["v1080", "v480", "v360"], caps
    needs = [need for r, need in per_title.rung_needs(RUNGS_1080, samples(sampled_rungs(RUNGS_1080), wanted), FPS)]
    assert needs[1] * per_title.SWITCH_RATIO > needs[0], needs  # v720's need too close to v1080's
    # the same samples at a flatter slope keep every rung
    assert list(choose_caps(RUNGS_1080, samples(sampled_rungs(RUNGS_1080), {"v720": 0.08, "v360": 0.1}), FPS)) == [
        "v1080", "v720", "v480", "v360"
    ]  # fmt: skip


def test_no_samples_keeps_the_fixed_ladder() -> None:
    assert choose_caps(RUNGS_1080, [], FPS) == {}
    p = probe(video())
    assert plan_ladder(p, caps={}) == plan_ladder(p)


def test_caps_only_lower_bitrates_and_never_upscale() -> None:
    p: Probe = probe(video(1280, 720))
    fixed = plan_ladder(p)
    assert [r.id for r in fixed.rungs] == ["v720", "v480", "v360"]
    rungs = fixed.h264_rungs
    caps = choose_caps(rungs, samples(sampled_rungs(rungs), {"v480": 0.02, "v360": 0.03}), FPS)
    # a cap for a rung the source cannot fill is ignored: never an upscale
    chosen = plan_ladder(p, caps={**caps, "v1080": 4_000_000}, av1_heights=(720,))
    assert [r.id for r in chosen.h264_rungs] == [r for r in ("v720", "v480", "v360") if r in caps]
    assert all(r.width <= 1280 and r.height <= 720 for r in chosen.rungs)
    for r in chosen.h264_rungs:
        assert r.video_bitrate == caps[r.id] <= next(f.video_bitrate for f in rungs if f.id == r.id)
        # the relations the advertised BANDWIDTH relies on
        assert r.maxrate == round(r.video_bitrate * 1.5 / 1000) * 1000
        assert r.bufsize == round(r.video_bitrate * 2 / 1000) * 1000
    # the AV1 copy follows its H.264 rung's chosen bitrate
    av1 = chosen.av1_rungs[0]
    assert av1.id == "v720-av1" and av1.video_bitrate == round(caps["v720"] * 0.6 / 1000) * 1000
    # keyframes and segments untouched
    assert (chosen.gop_frames, chosen.segment_s, chosen.fps) == (fixed.gop_frames, fixed.segment_s, fixed.fps)


def test_high_frame_rate_ceiling_is_the_tables_high_rate() -> None:
    fps = Fraction(60)
    rungs = plan_rungs(1920, 1080, fps)
    caps = choose_caps(rungs, samples(sampled_rungs(rungs), {"v720": 0.5, "v360": 0.5}), fps)
    assert caps["v1080"] == rungs[0].video_bitrate == 1.5 * STANDARD_RUNGS[2][1]


@pytest.mark.parametrize("text", ["", "auto", "perTitle "])
def test_bad_mode_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a ladder mode"):
        per_title.parse_mode(text)


def test_modes() -> None:
    assert per_title.parse_mode(" Per-Title") == "per-title"
    assert per_title.parse_mode("fixed") == "fixed"


def test_a_bad_setting_is_a_config_error(tmp_path: Path) -> None:
    assert Settings(data_dir=str(tmp_path), secret_key="k").ladder == "per-title"  # the default
    assert Settings(data_dir=str(tmp_path), secret_key="k", ladder="fixed").ladder == "fixed"
    with pytest.raises(ConfigError, match="STREAMFLIX_LADDER: 'auto' is not a ladder mode"):
        Settings(data_dir=str(tmp_path), secret_key="k", ladder="auto")


def test_a_provisional_model_lists_what_every_choice_encodes_alike() -> None:
    p = probe(video(1920, 1080))
    ladder = plan_ladder(p, av1_heights=(1080, 360))
    model = chunks.predict_presentation(p, ladder, title_id="t", version="v", end_s=10.0)
    shown = per_title.provisional(model, ladder)
    assert sorted(r.id for r in shown.video) == ["v360", "v360-av1"]
    assert [r.id for r in shown.audio] == [r.id for r in model.audio]
    for r in shown.video:
        assert r == model.rendition(r.id)  # as predicted
    assert per_title.is_pending(shown.extra) and not per_title.is_pending(model.extra)
    # every choice keeps the lowest rung at the table's bitrate, so the same rendition
    for need in (0.001, 0.02, 0.2):
        spans = samples(tuple(sampled_rungs(RUNGS_1080)), {"v720": need, "v360": need})
        caps = choose_caps(RUNGS_1080, spans, FPS)
        assert caps["v360"] == TABLE["v360"]
        chosen = chunks.predict_presentation(
            p, plan_ladder(p, av1_heights=(1080, 360), caps=caps), title_id="t", version="v", end_s=10.0
        )
        assert [chosen.rendition(r.id) for r in shown.video] == list(shown.video)


def test_one_rung_is_not_measured(tmp_path: Path) -> None:
    ladder = plan_ladder(probe(video(640, 360)))
    assert not per_title.has_choice(ladder)
    caps, record = asyncio.run(per_title.plan(str(tmp_path / "never-read.mp4"), ladder, 10.0))
    assert caps == {} and record["mode"] == "per-title" and record["samples"] == []
    assert record["caps"] == {"v360": TABLE["v360"]}


def test_the_ladder_line_says_a_choice_is_pending_or_had_nothing_to_choose(tmp_path: Path) -> None:
    assert ladder_line(dict(per_title.PENDING)) == "per-title (being chosen)"
    _, record = asyncio.run(per_title.plan(str(tmp_path / "never-read.mp4"), plan_ladder(probe(video(640, 360))), 10.0))
    assert ladder_line(record) == "per-title (one rung: nothing to choose): v360 700 kb/s (table 700)"
    assert ladder_line({"mode": "fixed"}) == "fixed"


# ---- a real encode through the CLI and the worker -------------------------------------------


def test_per_title_title_is_ready_with_its_ladder_shown(
    settings: Settings,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    clip = clip_factory(seconds=4, width=854, height=480, fps=30, audio=False)
    monkeypatch.setenv("STREAMFLIX_LADDER", "per-title")
    code, out, err = run_cli(monkeypatch, capsys, settings, "ingest", str(clip), "--title", "PT", "--wait", "--json")
    assert code == 0, err
    title = json.loads(out)
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "show", title["id"], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"] == "ready"
    record = shown["ladder"]
    assert record["mode"] == "per-title"
    assert record["probe"]["preset"] == per_title.PROBE_PRESET and record["probe"]["seconds"] > 0
    # one sample per span and sampled size (v480 and v360), each with its bits and bpp
    assert sorted({s["rung"] for s in record["samples"]}) == ["v360", "v480"]
    assert len(record["samples"]) == 2 * per_title.SPANS
    for s in record["samples"]:
        assert s["bits"] > 0 and s["bpp"] == pytest.approx(
            s["bits"] / (s["width"] * s["height"] * s["frames"]), abs=1e-5
        )
    caps = record["caps"]
    assert [r["id"] for r in record["rungs"]] == ["v480", "v360"]
    assert all(0 < caps[k] <= TABLE[k] for k in caps)
    assert caps["v360"] == TABLE["v360"]  # the lowest rung keeps the table

    # The published rungs are the chosen ones, and the advertised BANDWIDTH (from the chosen
    # maxrate and bufsize) holds the measured peak.
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    model = Presentation.from_json(
        asyncio.run(storage.get_bytes(keys.object_key(title["id"], shown["version"], keys.MODEL_NAME)))
    )
    assert sorted(r.id for r in model.video) == sorted(caps)
    check_presentation(model)

    async def predicted() -> Presentation:
        p = await probe_file(str(clip))
        ladder = plan_ladder(p, segment_s=model.segment_target_s, caps=caps)
        ends = await chunks.measure_source_ends(str(clip), p)
        return chunks.predict_presentation(p, ladder, title_id=title["id"], version="v", end_s=ends, preset="veryfast")

    before = asyncio.run(predicted())
    for r in model.video:
        advertised = before.rendition(r.id)
        assert advertised is not None and advertised.bandwidth_avg == caps[r.id]
        assert 0 < r.bandwidth_peak <= advertised.bandwidth_peak

    # ... and the text view says it in a line.
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "show", title["id"])
    assert code == 0, err
    [line] = [ln for ln in out.splitlines() if ln.startswith("ladder")]
    assert "per-title (probe" in line and f"v360 {caps['v360'] // 1000} kb/s (table 700)" in line


def test_a_fixed_title_says_so(
    settings: Settings,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    clip = clip_factory(seconds=4, width=854, height=480, fps=30, audio=False)
    monkeypatch.setenv("STREAMFLIX_LADDER", "fixed")
    code, out, err = run_cli(monkeypatch, capsys, settings, "ingest", str(clip), "--title", "F", "--wait", "--json")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "show", json.loads(out)["id"], "--json")
    assert code == 0, err
    assert json.loads(out)["ladder"] == {"mode": "fixed"}


def test_a_failed_probe_keeps_the_fixed_ladder_and_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    caps, record = asyncio.run(per_title.plan(str(broken), plan_ladder(probe(video())), 10.0))
    assert caps == {}
    assert record["mode"] == "fixed" and record["requested"] == "per-title" and record["error"]
