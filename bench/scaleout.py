"""Benchmark (not a test): one title's encode spread over workers, against the one-pass encode.

    .venv/bin/python bench/scaleout.py [--seconds 600] [--phases a,b,c,d] [--phase-timeout 5400]
                                       [--no-ssim]

The source is bench/firstframe.py's 1080p30 one (testsrc2 + sine, 8 Mb/s, GOP 250; cached
in bench/out/), 10 min by default. Phases, one after the other, each bounded by
`--phase-timeout`, each on a database, Redis prefix and storage dir of its own:

  (a) reference: `transcoder.pipeline.transcode()` in this process, as bench/transcode.py
      calls it: the worker's default preset and ffmpeg's default threads, one ffmpeg for the
      ladder; wall time.
  (b) the real queue: `streamflix ingest` then ONE `streamflix worker` (default settings)
      until the title is `ready` (polled in the database every 50 ms), from the start of
      the ingest command. Target (b)/(a) <= 1.10.
  (c) ONE worker pinned with `taskset -c 0`, x264 threads 1 (STREAMFLIX_ENCODER_THREADS=1;
      on a checkout whose settings have no `encoder_threads` the variable is ignored and the
      run says so: ffmpeg's automatic thread count under a one-core affinity is then used).
  (d) TWO workers pinned to cores 0 and 1, each with threads 1. Target (c)/(d) >= 1.8.

Each phase also prints the CPU seconds its encoders used (user + system of the process
tree, reaped children included), so a machine busy with other work shows up as wall time
that is not CPU time.

Then on (d)'s output (kept until the end of the run):
  - the checks the tests make of a published version: `transcoder.pipeline.check_presentation`
    (aligned boundaries across rungs, audio count, duration), `packager.checks`, a keyframe at
    the start of every video segment (`transcoder.mp4.segment_starts_with_keyframe`), and the
    origin's HLS and DASH for a viewer (as tests/server/test_stream_real.py: playlists parsed
    with m3u8, EXTINF equal to the model, every segment fetched with the model's size,
    BANDWIDTH / AVERAGE-BANDWIDTH recomputed from the bytes, the MPD parsed with mpegdash);
  - audio vs video end drift: the end of a0's last segment minus v1080's, from the model (ms);
  - SSIM of the 1080 rung: the HLS output decoded (init + every segment) against the source
    (fps=30, scaled to 1920x1080), ffmpeg's `ssim` filter per frame; the frames within +-2 of
    each chunk boundary (every chunk_segments x segment duration) against all the others:
    both means and the minimum of each.
Exit status non-zero on errors (a phase that failed or timed out, a check that failed), not
on a missed target (printed PASS / MISS).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import tree_cpu_s  # noqa: E402
from firstframe import OUT, Api, Stack, make_accounts, make_source  # noqa: E402

TARGET_ONE_WORKER = 1.10
TARGET_SPEEDUP = 1.8
NEAR_BOUNDARY = 2  # frames either side of a chunk boundary


def settings_defaults() -> Any:
    from server.settings import Settings

    return Settings.load(env={**os.environ, "STREAMFLIX_SECRET_KEY": "bench"})


def has_setting(name: str) -> bool:
    from server.settings import Settings

    return name in {f.name for f in dataclasses.fields(Settings)}


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---- phases ---------------------------------------------------------------------------------


def phase_reference(src: Path, timeout: float) -> dict[str, Any]:
    from media.probe import probe
    from transcoder.pipeline import transcode

    preset = settings_defaults().x264_preset
    probed = asyncio.run(probe(str(src)))
    out = OUT / "scaleout-reference"
    shutil.rmtree(out, ignore_errors=True)
    cpu0 = children_cpu_s()
    started = time.perf_counter()
    p = asyncio.run(transcode(str(src), probed, out, title_id="bench", version="v1", preset=preset, timeout_s=timeout))
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu0
    shutil.rmtree(out, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "note": f"preset {preset}, threads auto, {len(p.renditions)} renditions"}


def wait_ready(stack: Stack, title_id: str, deadline: float) -> tuple[float, str, dict[str, float]]:
    """Polls the title every 50 ms: (wall time ready, version, {status: first seen at})."""
    import asyncpg

    async def go() -> tuple[float, str, dict[str, float]]:
        conn = await asyncpg.connect(stack.env["STREAMFLIX_DATABASE_URL"])
        seen: dict[str, float] = {}
        try:
            n = 0
            while time.monotonic() < deadline:
                row = await conn.fetchrow(
                    "SELECT status, current_version, failure_reason FROM catalog.titles WHERE id = $1", title_id
                )
                now = time.time()
                if row is None:
                    raise RuntimeError(f"title {title_id} is gone")
                seen.setdefault(row["status"], now)
                if row["status"] == "ready":
                    return now, str(row["current_version"]), seen
                if row["status"] == "failed":
                    raise RuntimeError(f"title {title_id} failed: {row['failure_reason']}")
                n += 1
                if n % 20 == 0:
                    stack.check_alive()
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        raise TimeoutError(f"title {title_id} not ready in time (statuses seen: {sorted(seen)})")

    return asyncio.run(go())


def phase_queue(
    name: str, src: Path, timeout: float, *, cpus: list[str | None], threads: int | None, keep: bool = False
) -> dict[str, Any]:
    extra = {"STREAMFLIX_ENCODER_THREADS": str(threads)} if threads is not None else {}
    stack = Stack(f"scaleout-{name}", workers=len(cpus), worker_cpus=cpus, extra_env=extra)
    r: dict[str, Any] = {"stack": stack}
    try:
        stack.start(serve=keep)
        time.sleep(1.0)  # the workers are up and listening before the clock starts
        started = time.time()
        out = stack.cli("ingest", str(src), "--title", f"Scale-out {name}", "--year", "2024", "--json", timeout=timeout)
        t0 = time.time()
        title_id = str(json.loads(out)["id"])
        ready, version, seen = wait_ready(stack, title_id, time.monotonic() + timeout)
        cpu = sum(tree_cpu_s(pid, reaped=True) for pid in stack.worker_pids())
        r.update(
            wall=ready - started,
            ingest=t0 - started,
            cpu=cpu,
            id=title_id,
            version=version,
            playable=(seen["playable"] - started) if "playable" in seen else None,
        )
    except BaseException:
        stack.stop()
        raise
    if not keep:
        stack.stop()
    return r


# ---- checks on (d)'s output --------------------------------------------------------------


def load_model(stack: Stack, title_id: str, version: str) -> Any:
    from media import keys
    from packager.model import Presentation

    root = stack.dir / "media"
    return Presentation.from_json((root / keys.model_key(title_id, version)).read_bytes()), root


def check_output(stack: Stack, title_id: str, version: str, src: Path) -> tuple[list[str], dict[str, Any]]:
    """The tests' checks of a published version; returns (problems, facts)."""
    import m3u8
    from mpegdash.parser import MPEGDASHParser

    from media import keys
    from media.probe import probe
    from packager import checks as packager_checks
    from transcoder import mp4
    from transcoder.pipeline import check_presentation

    problems: list[str] = []
    model, root = load_model(stack, title_id, version)
    facts: dict[str, Any] = {"progressive": model.progressive, "renditions": [r.id for r in model.renditions]}
    if model.progressive:
        problems.append("the model of a ready title is still progressive")
    probed = asyncio.run(probe(str(src)))
    for what, fn in (
        ("pipeline.check_presentation", lambda: check_presentation(model, expected_duration_s=probed.duration_s)),
        ("packager.checks", lambda: packager_checks.check_presentation(model)),
    ):
        try:
            fn()
        except Exception as exc:
            problems.append(f"{what}: {exc}")
    for r in model.video:
        init = root / keys.object_key(title_id, version, r.init_name)
        for n in range(r.start_number, r.start_number + len(r.segments)):
            seg = root / keys.object_key(title_id, version, r.segment_name(n))
            if not seg.is_file():
                problems.append(f"{r.id}: segment {n} missing in storage")
            elif not mp4.segment_starts_with_keyframe(seg, init):
                problems.append(f"{r.id}: segment {n} does not start with a keyframe")

    # The origin, as a viewer sees it.
    api = Api(stack.base)
    token = make_accounts(stack)
    status, urls = api.call("POST", f"/titles/{title_id}/playback", token=token)
    if status != 200:
        return problems + [f"playback answered {status}: {urls}"], facts

    def get(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return bytes(resp.read())

    hls = urls["hls_url"] if urls["hls_url"].startswith("http") else stack.base + urls["hls_url"]
    master = m3u8.loads(get(hls).decode())
    sizes: dict[str, list[int]] = {}
    for uri in [p.uri for p in master.playlists] + [m.uri for m in master.media if m.uri]:
        rid = uri.split("/")[0]
        r = model.rendition(rid)
        url = urljoin(hls, uri)
        pl = m3u8.loads(get(url).decode())
        if not pl.is_endlist or len(pl.segments) != len(r.segments):
            problems.append(f"{rid}: playlist has {len(pl.segments)} segments, model {len(r.segments)}")
            continue
        for s, seg in zip(pl.segments, r.segments, strict=True):
            if abs(Fraction(str(s.duration)) - Fraction(seg.duration, r.timescale)) > Fraction(1, 2_000_000):
                problems.append(f"{rid}: EXTINF {s.duration} != model {seg.duration}/{r.timescale}")
                break
        if get(urljoin(url, pl.segment_map[0].uri))[4:8] != b"ftyp":
            problems.append(f"{rid}: init segment without ftyp")
        sizes[rid] = []
        for s, seg in zip(pl.segments, r.segments, strict=True):
            data = get(urljoin(url, s.uri))
            sizes[rid].append(len(data))
            if len(data) != seg.size or data[4:8] not in (b"styp", b"moof"):
                problems.append(f"{rid}: {s.uri.split('?')[0]} is {len(data)} bytes, model {seg.size}")

    def peak(rid: str) -> int:
        r = model.rendition(rid)
        return math.ceil(
            max(Fraction(n * 8 * r.timescale, s.duration) for n, s in zip(sizes[rid], r.segments, strict=True))
        )

    def average(rid: str) -> int:
        r = model.rendition(rid)
        return math.ceil(Fraction(sum(sizes[rid]) * 8 * r.timescale, sum(s.duration for s in r.segments)))

    audio = [m.uri.split("/")[0] for m in master.media if m.type == "AUDIO" and m.uri]
    a_peak = max((peak(a) for a in audio if a in sizes), default=0)
    a_avg = max((average(a) for a in audio if a in sizes), default=0)
    for v in master.playlists:
        rid = v.uri.split("/")[0]
        if rid not in sizes:
            continue
        if v.stream_info.bandwidth != peak(rid) + a_peak:
            problems.append(f"{rid}: BANDWIDTH {v.stream_info.bandwidth} != measured {peak(rid) + a_peak}")
        if v.stream_info.average_bandwidth != average(rid) + a_avg:
            problems.append(f"{rid}: AVERAGE-BANDWIDTH {v.stream_info.average_bandwidth} != {average(rid) + a_avg}")
    dash = urls["dash_url"] if urls["dash_url"].startswith("http") else stack.base + urls["dash_url"]
    mpd = MPEGDASHParser.parse(get(dash).decode())
    # the media a player streams: not the seek thumbnails' image set, nor the download
    media_sets = [a for a in mpd.periods[0].adaptation_sets if "image" not in (a.content_type, a.mime_type)]
    reps = {rep.id: rep for aset in media_sets for rep in aset.representations}
    streamed = {r.id for r in model.renditions if r.kind in ("video", "audio", "subtitles")}
    if mpd.type != "static" or set(reps) != streamed:
        problems.append(f"MPD: type {mpd.type}, representations {sorted(reps)}")
    for rid, rep in reps.items():
        if rid in sizes and (rep.bandwidth != peak(rid) or rep.codecs != model.rendition(rid).codecs):
            problems.append(f"MPD {rid}: bandwidth {rep.bandwidth} (measured {peak(rid)}), codecs {rep.codecs}")
    facts["segments_fetched"] = sum(len(v) for v in sizes.values())
    return problems, facts


def end_drift_ms(stack: Stack, title_id: str, version: str) -> tuple[float, float, float]:
    """(a0 end, v1080 end, a0 - v1080 in ms), from the model's ticks."""
    model, _root = load_model(stack, title_id, version)

    def end(rid: str) -> Fraction:
        r = model.rendition(rid)
        return Fraction(r.start_time + sum(s.duration for s in r.segments), r.timescale)

    video = max(model.video, key=lambda r: r.height or 0).id
    a, v = end("a0"), end(video)
    return float(a), float(v), float((a - v) * 1000)


def ssim_at_boundaries(
    stack: Stack, title_id: str, version: str, src: Path, chunk_frames: int, timeout: float
) -> dict[str, Any]:
    """Per-frame SSIM of the top rung against the source scaled to it."""
    from media import keys

    model, root = load_model(stack, title_id, version)
    top = max(model.video, key=lambda r: r.height or 0)
    joined = OUT / f"scaleout-{top.id}-joined.mp4"
    with joined.open("wb") as fh:
        fh.write((root / keys.object_key(title_id, version, top.init_name)).read_bytes())
        for n in range(top.start_number, top.start_number + len(top.segments)):
            fh.write((root / keys.object_key(title_id, version, top.segment_name(n))).read_bytes())
    stats = OUT / "scaleout-ssim.log"
    fps = Fraction(top.frame_rate or "30")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(joined), "-i", str(src)]
        + [
            "-filter_complex",
            f"[1:v]fps=fps={fps},scale=w={top.width}:h={top.height},setsar=1,format=yuv420p[ref];"
            f"[0:v]setsar=1,format=yuv420p[out];[out][ref]ssim=stats_file={stats}",
            "-f",
            "null",
            "-",
        ],
        check=True,
        timeout=timeout,
    )
    values: list[float] = []
    for line in stats.read_text().splitlines():
        fields = dict(p.split(":", 1) for p in line.split() if ":" in p)
        values.append(float(fields["All"]))
    near_idx = {
        b + d for b in range(chunk_frames, len(values), chunk_frames) for d in range(-NEAR_BOUNDARY, NEAR_BOUNDARY + 1)
    }
    near = [v for i, v in enumerate(values) if i in near_idx]
    rest = [v for i, v in enumerate(values) if i not in near_idx]
    joined.unlink(missing_ok=True)
    return {
        "frames": len(values),
        "boundaries": len(range(chunk_frames, len(values), chunk_frames)),
        "near_mean": sum(near) / len(near) if near else float("nan"),
        "near_min": min(near) if near else float("nan"),
        "rest_mean": sum(rest) / len(rest) if rest else float("nan"),
        "rest_min": min(rest) if rest else float("nan"),
        "rung": top.id,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=600, help="source length (default 600 = 10 min)")
    ap.add_argument("--phases", default="a,b,c,d")
    ap.add_argument("--phase-timeout", type=float, default=5400.0, help="seconds per phase (default 90 min)")
    ap.add_argument("--no-ssim", action="store_true")
    args = ap.parse_args()
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    src = make_source(args.seconds)
    settings = settings_defaults()
    segment_s = settings.segment_duration_s
    chunk_segments = getattr(settings, "chunk_segments", None)
    threads_setting = has_setting("encoder_threads")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"bench/scaleout.py: {src.name} ({args.seconds} s), cpus={os.cpu_count()}, load avg "
        f"{os.getloadavg()[0]:.1f}, preset {settings.x264_preset}, segment {segment_s} s, chunk_segments "
        f"{chunk_segments if chunk_segments is not None else 'n/a (no chunked encode in this checkout)'}; "
        f"commit {commit[:70]}",
        flush=True,
    )
    if not threads_setting:
        print(
            "note: this checkout has no `encoder_threads` setting: STREAMFLIX_ENCODER_THREADS=1 is ignored in (c)/(d); "
            "ffmpeg/x264 choose their threads from the one-core affinity",
            flush=True,
        )
    results: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    kept: Stack | None = None
    plan = {
        "a": ("(a) one-pass transcode()", None),
        "b": ("(b) queue, 1 worker", dict(cpus=[None], threads=None)),
        "c": ("(c) 1 worker, core 0, threads 1", dict(cpus=["0"], threads=1)),
        "d": ("(d) 2 workers, cores 0+1, threads 1", dict(cpus=["0", "1"], threads=1)),
    }
    try:
        for p in phases:
            label, kw = plan[p]
            print(f"{label} ...", flush=True)
            try:
                if kw is None:
                    results[p] = phase_reference(src, args.phase_timeout)
                else:
                    results[p] = phase_queue(p, src, args.phase_timeout, keep=(p == "d"), **kw)
                    if p == "d":
                        kept = results[p]["stack"]
                r = results[p]
                extra = f", ingest {r['ingest']:.1f} s" if "ingest" in r else ""
                extra += f", playable at {r['playable']:.1f} s" if r.get("playable") is not None else ""
                print(f"    {r['wall']:.1f} s wall, {r['cpu']:.0f} s CPU{extra}", flush=True)
            except Exception as exc:
                errors.append(f"{label}: {type(exc).__name__}: {exc}")
                print(f"    failed: {exc}", flush=True)

        checks: dict[str, Any] = {}
        if kept is not None and "d" in results:
            d = results["d"]
            t = time.monotonic()
            try:
                problems, facts = check_output(kept, d["id"], d["version"], src)
                checks["problems"], checks["facts"] = problems, facts
                errors += [f"check: {p}" for p in problems[:20]]
            except Exception as exc:
                errors.append(f"checks: {type(exc).__name__}: {exc}")
            checks["check_s"] = time.monotonic() - t
            try:
                checks["drift"] = end_drift_ms(kept, d["id"], d["version"])
            except Exception as exc:
                errors.append(f"drift: {type(exc).__name__}: {exc}")
            if not args.no_ssim:
                frames_per_chunk = int((chunk_segments or 8) * segment_s * 30)
                try:
                    checks["ssim"] = ssim_at_boundaries(
                        kept, d["id"], d["version"], src, frames_per_chunk, args.phase_timeout
                    )
                except Exception as exc:
                    errors.append(f"ssim: {type(exc).__name__}: {exc}")
    finally:
        if kept is not None:
            kept.stop()

    print("\n| measure | figure | target | verdict |")
    print("| --- | --- | --- | --- |")
    for p in phases:
        if p in results:
            r = results[p]
            print(f"| {plan[p][0]} | {r['wall']:.1f} s wall, {r['cpu']:.0f} s CPU | | |")
    if "a" in results and "b" in results:
        ratio = results["b"]["wall"] / results["a"]["wall"]
        print(
            f"| (b)/(a) | {ratio:.3f}x | <= {TARGET_ONE_WORKER:.2f}x | "
            f"{'PASS' if ratio <= TARGET_ONE_WORKER else 'MISS'} |"
        )
    if "c" in results and "d" in results:
        speedup = results["c"]["wall"] / results["d"]["wall"]
        print(
            f"| (c)/(d) speed-up | {speedup:.3f}x | >= {TARGET_SPEEDUP:.1f}x | "
            f"{'PASS' if speedup >= TARGET_SPEEDUP else 'MISS'} |"
        )
    if "d" in results:
        if "problems" in checks:
            n = len(checks["problems"])
            print(
                f"| HLS/DASH/model checks on (d) | {n} problems, {checks['facts'].get('segments_fetched', 0)} segments "
                f"fetched | 0 | {'PASS' if n == 0 else 'MISS'} |"
            )
        if "drift" in checks:
            a, v, ms = checks["drift"]
            print(f"| a0 end - v1080 end | {ms:+.1f} ms (a0 {a:.3f} s, video {v:.3f} s) | | |")
        if "ssim" in checks:
            s = checks["ssim"]
            ok = s["near_mean"] >= s["rest_mean"] - 0.001
            print(
                f"| SSIM {s['rung']} within +-{NEAR_BOUNDARY} frames of {s['boundaries']} chunk boundaries | "
                f"mean {s['near_mean']:.5f}, min {s['near_min']:.5f} | >= rest - 0.001 | "
                f"{('PASS' if ok else 'MISS') if s['boundaries'] else 'n/a (no boundary)'} |"
            )
            print(
                f"| SSIM {s['rung']} other frames ({s['frames']} in all) | "
                f"mean {s['rest_mean']:.5f}, min {s['rest_min']:.5f} | | |"
            )
    if errors:
        print("\nerrors:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
