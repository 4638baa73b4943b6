"""The ffmpeg argv for one title: pure, built with ffmpeg-python, run by `transcoder.runner`.

One process decodes the source once; the video goes through `fps` (the frame-rate cap and
VFR -> CFR, once, before the split, so every rung gets the very same frames and timestamps)
and is `split` into one branch per rung, each `scale`d to its size with square pixels and
converted to 8-bit 4:2:0, then encoded by its own libx264 with a fixed GOP and no scene-cut
keyframes. Audio is encoded once to AAC-LC.

Interlaced sources go through `bwdif` first, before `fps` and any scaling (scaling a woven
frame blends its two fields into combing that no later filter can undo). `mode=send_frame`
makes one frame per frame, so the frame rate, GOP and segment plan stay as planned;
`parity=auto` takes the field order from each decoded frame, which comes from the bitstream,
because containers disagree about what "tb" and "bt" mean; `deint=all` because the probe
already said the source is interlaced.

Timeline: without `-copyts` ffmpeg subtracts the source's start time (a broadcast capture's
3600 s, MPEG-TS's 1.4 s), so the earliest stream starts at 0. The others may start later:
the fMP4 muxer would start every track at 0 regardless and lose that offset, putting audio
and video out of sync. So `fps=start_time=0` holds the first picture until the video
begins and `aresample=async=1:first_pts=0` pads silence until the audio begins: both start
at 0 and stay in step.

Rotation: ffmpeg applies the source's display matrix on decode (autorotate, on by default,
also for `-filter_complex` inputs), so the scale targets are display sizes. Encoded streams
fed from a filter graph get no display matrix, so the output carries no rotation and the
matrix is applied exactly once.

Muxer: the HLS muxer in fMP4 mode rather than the DASH muxer, because it names each variant
(`var_stream_map ... name:v1080`) and so writes our storage layout directly:
`out_dir/{rendition_id}/init.mp4` and `out_dir/{rendition_id}/{n}.m4s` with n from 1, each
rendition (audio too) its own variant with separate segments; the DASH muxer can only name
files by numeric representation id. Both cut only on keyframes once `hls_time` has elapsed
since the start, and with a GOP that divides the segment duration that is exactly every
`segment_s` seconds. Its `{id}.m3u8` playlists in out_dir are a by-product: the packager
renders playlists from the rendition model.
"""

from __future__ import annotations

from pathlib import Path

import ffmpeg

from media import languages
from media.probe import HTTP_READ_OPTIONS, input_name, is_http
from transcoder.ladder import AV1, PIX_FMT, AudioPlan, Ladder

INIT_NAME = "init.mp4"
# SVT-AV1's speed/quality trade-off (0 slowest .. 13 fastest): 8-10 is its own advice for VOD
# on modest machines. At 0.6x the H.264 bits, 10 (about x264 veryfast's CPU per rung) fell
# short of the H.264 rung's SSIM at 720p on a noisy source, and needed 0.8x the bits to match
# it; 8 matches both rungs at 0.6x, for about 2.2x x264 veryfast's CPU (bench/av1.py).
AV1_PRESET = 8
# One output frame per input frame (the frame rate is kept), field order from each frame.
DEINTERLACE = {"mode": "send_frame", "parity": "auto", "deint": "all"}
# Pad silence (or trim) so the audio starts at 0; async turns aresample's timestamp
# compensation on, which first_pts needs.
AUDIO_FROM_ZERO = {"async": 1, "first_pts": 0}


def build_ffmpeg_args(
    source: str,
    ladder: Ladder,
    out_dir: Path,
    *,
    preset: str = "veryfast",
    threads: int = 0,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """The argv (program first) that encodes `source` to `ladder` under `out_dir`."""
    inp = _input(source)
    streams: list = []
    opts: dict[str, object] = {}
    variants: list[str] = []
    if ladder.rungs:
        _add_video(inp, ladder, ladder.rungs, streams, opts, variants, preset=preset, trim_frames=None)
    if ladder.audio:
        # The one-pass encode makes the default audio only; the chunked worker makes them all.
        _add_audio(inp, ladder.audio, streams, opts, variants, pad=bool(ladder.rungs))
    if not streams:
        raise ValueError("ladder has neither video rungs nor audio")
    ids = tuple(r.id for r in ladder.rungs) + ((ladder.audio.id,) if ladder.audio else ())
    return _finish(streams, opts, variants, ids, ladder, out_dir, threads=threads, ffmpeg_bin=ffmpeg_bin)


def build_chunk_args(
    source: str,
    ladder: Ladder,
    out_dir: Path,
    *,
    rendition_ids: tuple[str, ...] | list[str],
    start_s: str,
    frames: int | None,
    start_number: int,
    segment_us: int | None = None,
    preset: str = "veryfast",
    threads: int = 0,
    ffmpeg_bin: str = "ffmpeg",
) -> list[str]:
    """The argv of one video chunk task (see `transcoder.chunks`): the rungs `rendition_ids`,
    from `start_s` (seconds on the encode's timeline, a frame boundary of the output grid,
    as an exact decimal string) for `frames` output frames (None: to the end), segments
    numbered from `start_number`.

    `-ss` is an input option (a seek, then decoding from the keyframe before it) with
    `-noaccurate_seek`, so the frames before the chunk start reach `fps` with negative
    timestamps and `fps=start_time=0` drops them by the very rounding the one-pass encode
    applies at that instant: the chunk's first frame is the one-pass encode's frame there.
    `trim=end_frame` right after `fps` stops at exactly `frames` frames. Bit-exact flags keep
    the init segments of every task byte-identical.

    `segment_us` (the segment's length in microseconds, rounded down) makes the muxer cut at
    every segment-grid keyframe even when the GOP is a hair under 2 s (an odd variable frame
    rate's average, 40 frames at 20.07 fps): it cuts on the first keyframe at or after each
    multiple of `hls_time`, so `hls_time` is set 1 us under the grid's segment length.
    """
    wanted = set(rendition_ids)
    rungs = tuple(r for r in ladder.rungs if r.id in wanted)
    if not rungs or len(rungs) != len(wanted):
        raise ValueError(f"unknown video renditions {sorted(wanted - {r.id for r in ladder.rungs})}")
    inp = _input(source, ss=start_s, noaccurate_seek=None)
    streams: list = []
    opts: dict[str, object] = {}
    variants: list[str] = []
    _add_video(inp, ladder, rungs, streams, opts, variants, preset=preset, trim_frames=frames)
    opts.update(BITEXACT)
    # No edit list for the B-frame delay: each segment is rewritten to be presented from its
    # decode time (`transcoder.mp4.present_from_decode_time`), which every player reads alike.
    opts["hls_segment_options"] = "use_editlist=0"
    ids = tuple(r.id for r in rungs)
    return _finish(
        streams,
        opts,
        variants,
        ids,
        ladder,
        out_dir,
        threads=threads,
        ffmpeg_bin=ffmpeg_bin,
        start_number=start_number,
        temp_file=True,
        hls_time=f"{segment_us - 1}us" if segment_us else None,
    )


def build_audio_args(
    source: str,
    ladder: Ladder,
    out_dir: Path,
    *,
    preset: str = "veryfast",
    threads: int = 0,
    ffmpeg_bin: str = "ffmpeg",
    samples: int | None = None,
    audio_id: str | None = None,
    start_s: str | None = None,
    start_number: int = 1,
) -> list[str]:
    """The argv of an audio task: the whole timeline of the AAC rendition `audio_id` (default:
    the ladder's default audio) exactly as the one-pass command encodes it (padded from 0 when
    the source has video), alone in its own process.

    `samples` pins the length to exactly that many samples at the output rate (the predicted
    model's count): resampling from another rate may otherwise end one sample either side of
    the prediction. It pads or cuts at most a sample or two at the very end.

    A part of the timeline (`transcoder.chunks.encode_audio_task`): `start_s` (an exact
    decimal, a segment boundary whose sample offset is a multiple of the AAC frame) is an
    input `-ss`, accurate to the sample, so the encoder's frames fall on the one-pass grid;
    `samples` then counts from there and segments are numbered from `start_number`."""
    del preset  # no video encoder; kept for a uniform signature
    if not ladder.audio:
        raise ValueError("ladder has no audio")
    plan = ladder.audio_plan(audio_id) if audio_id else ladder.audio
    inp = _input(source, **({"ss": start_s} if start_s is not None else {}))
    streams: list = []
    opts: dict[str, object] = {}
    variants: list[str] = []
    _add_audio(inp, plan, streams, opts, variants, pad=bool(ladder.rungs), samples=samples)
    opts.update(BITEXACT)
    return _finish(
        streams,
        opts,
        variants,
        (plan.id,),
        ladder,
        out_dir,
        threads=threads,
        ffmpeg_bin=ffmpeg_bin,
        start_number=start_number,
        temp_file=True,
    )


# Every task writes the same init bytes: no encoder version strings, no creation times.
BITEXACT = {"fflags": "+bitexact", "flags:v": "+bitexact", "flags:a": "+bitexact"}


def _input(source: str, **kw: object):  # -> ffmpeg-python's untyped input node
    """`source` as the input, with the read options of a URL (`media.probe.input_options`)."""
    return ffmpeg.input(input_name(source), **(HTTP_READ_OPTIONS if is_http(source) else {}), **kw)


def _add_video(inp, ladder: Ladder, rungs, streams: list, opts: dict, variants: list, *, preset: str, trim_frames):
    if ladder.video_source_index is None or not ladder.fps:
        raise ValueError("a ladder with rungs needs a video stream index and fps")
    video = inp[str(ladder.video_source_index)]
    if ladder.deinterlace:
        video = video.filter("bwdif", **DEINTERLACE)
    video = video.filter("fps", fps=ladder.fps, start_time=0)
    if trim_frames is not None:
        video = video.filter("trim", end_frame=trim_frames)
    n = len(rungs)
    branches = video.filter_multi_output("split", n) if n > 1 else None
    gop = ladder.gop_frames
    uniform = len({r.codec for r in rungs}) == 1
    for i, rung in enumerate(rungs):
        branch = branches.stream(i) if branches is not None else video
        streams.append(
            branch.filter("scale", w=rung.width, h=rung.height).filter("setsar", "1").filter("format", PIX_FMT)
        )
        opts[f"b:v:{i}"] = rung.video_bitrate
        opts[f"maxrate:v:{i}"] = rung.maxrate
        opts[f"bufsize:v:{i}"] = rung.bufsize
        # Encoder options apply to every video stream when the rungs share a codec (a chunk
        # task's rung group always does), else per stream.
        at = "" if uniform else f":{i}"
        # Fixed GOP, no scene-cut keyframes: keyframes at the same instants in every rung.
        opts[f"g:v{at}"] = gop
        if rung.codec == AV1:
            opts[f"c:v{at}"] = "libsvtav1"
            opts[f"preset:v{at}"] = AV1_PRESET
            # irefresh-type=2: every intra frame a KEY frame (closed GOP), so each segment
            # starts decodable on its own; scd=0: no extra keyframes at scene cuts; the
            # level is the planned one, so the predicted CODECS string is the init's.
            opts[f"svtav1-params:v:{i}"] = f"irefresh-type=2:scd=0:level={rung.level_name.replace('.', '')}"
        else:
            opts[f"c:v{at}"] = "libx264"
            opts[f"preset:v{at}"] = preset
            opts[f"profile:v:{i}"] = rung.profile
            opts[f"level:v:{i}"] = rung.level_name
            opts[f"keyint_min:v{at}"] = gop
            opts[f"sc_threshold:v{at}"] = 0
            opts[f"x264-params:v{at}"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        variants.append(f"v:{i},name:{rung.id}")
    opts["pix_fmt:v"] = PIX_FMT


def _add_audio(
    inp, a: AudioPlan, streams: list, opts: dict, variants: list, *, pad: bool, samples: int | None = None
) -> None:
    audio = inp[str(a.source_index)]
    # Alone, audio needs no padding: the muxer starts it at 0 and there is nothing to
    # keep in step with.
    if samples is not None:
        audio = audio.filter("aresample", **(AUDIO_FROM_ZERO if pad else {}), osr=a.sample_rate)
        audio = audio.filter("apad", whole_len=samples).filter("atrim", end_sample=samples)
    elif pad:
        audio = audio.filter("aresample", **AUDIO_FROM_ZERO)
    streams.append(audio)
    opts.update(
        {
            "c:a": a.codec,
            "b:a": a.bitrate,
            "ac": a.channels,
            "ar": a.sample_rate,
        }
    )
    mdhd = languages.to_iso639_2(a.language)
    if mdhd and mdhd != languages.UNDETERMINED:
        opts["metadata:s:a:0"] = f"language={mdhd}"  # mdhd wants ISO 639-2
    variants.append(f"a:0,name:{a.id}")


def _finish(
    streams: list,
    opts: dict[str, object],
    variants: list[str],
    ids: tuple[str, ...],
    ladder: Ladder,
    out_dir: Path,
    *,
    threads: int,
    ffmpeg_bin: str,
    start_number: int = 1,
    temp_file: bool = False,
    hls_time: str | None = None,
) -> list[str]:
    # hlsenc substitutes %v in the init name only when there are several variants.
    init_name = f"%v/{INIT_NAME}" if len(ids) > 1 else f"{ids[0]}/{INIT_NAME}"
    opts.update(
        {
            "threads": threads,
            "map_metadata": -1,
            "map_chapters": -1,
            "f": "hls",
            "hls_time": hls_time or ladder.segment_s,
            "hls_playlist_type": "vod",
            "hls_segment_type": "fmp4",
            # temp_file: a segment (and the playlist) appears under its name only once complete.
            "hls_flags": "independent_segments+temp_file" if temp_file else "independent_segments",
            # init.mp4 is written relative to the playlist's folder (out_dir).
            "hls_fmp4_init_filename": init_name,
            "hls_segment_filename": str(out_dir / "%v" / "%d.m4s"),
            "hls_start_number_source": "generic",
            "start_number": start_number,
            "var_stream_map": " ".join(variants),
        }
    )
    out = ffmpeg.output(*streams, str(out_dir / "%v.m3u8"), **opts)
    head = [ffmpeg_bin, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-nostats", "-progress", "pipe:1"]
    return head + out.get_args()
