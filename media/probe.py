"""Run ffprobe on a source (a local path or a URL ffprobe can read) and return a `Probe`.

The parsing lives in `media.probe_parse`; this module only runs the process and turns its
failures into one-line `ProbeError` reasons a user can act on.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat

from media.errors import ProbeError
from media.probe_model import Probe
from media.probe_parse import parse_probe

FFPROBE = "ffprobe"
DEFAULT_TIMEOUT_S = 60.0
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# How ffmpeg and ffprobe read a source named by an http(s) URL (a storage object's presigned
# URL): a connection that stalls fails after 20 s instead of hanging, and one that drops or is
# refused is reopened at the same offset for up to 2 s first.
HTTP_READ_OPTIONS = {
    "rw_timeout": "20000000",
    "reconnect": "1",
    "reconnect_on_network_error": "1",
    "reconnect_delay_max": "2",
}


# The secret-bearing query parameters of a presigned URL (SigV2 and SigV4).
_SIGNATURE = re.compile(r"((?:X-Amz-)?(?:Signature|Credential|Security-Token)=)[^&\s\"':]+", re.IGNORECASE)


def unsigned(text: str) -> str:
    """`text` (an error, ffmpeg's stderr) with the secrets of any presigned URL in it replaced:
    what a reader of a URL source logs or stores never grants access to the object."""
    return _SIGNATURE.sub(r"\1...", text)


def is_http(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def input_name(source: str) -> str:
    """`source` as ffmpeg's or ffprobe's input: a URL as it is, a path behind "file:" (so a
    local name like "a:b.mp4" or "-x.mp4" is never read as a protocol or an option)."""
    return source if _URL.match(source) else "file:" + source


def input_options(source: str) -> list[str]:
    """The options to give before `-i` (or the input of ffprobe) for `source`."""
    return [arg for k, v in HTTP_READ_OPTIONS.items() for arg in ("-" + k, v)] if is_http(source) else []


def ffprobe_argv(source: str, ffprobe: str = FFPROBE) -> list[str]:
    return [
        ffprobe, "-v", "error", *input_options(source),
        "-print_format", "json", "-show_format", "-show_streams", input_name(source),
    ]  # fmt: skip


def failure_reason(stderr: str, source: str) -> str:
    """ffprobe's error output -> one line. Its last line is "<input>: <strerror>"."""
    if "moov atom not found" in stderr:
        # An MP4 whose index is missing: cut short, still being written, or not an MP4 at all.
        return "not a playable MP4 (ffprobe: moov atom not found): truncated or incomplete file?"
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "ffprobe failed without saying why"
    last = lines[-1]
    for name in ("file:" + source, source):
        if last.startswith(name + ": "):
            last = last[len(name) + 2 :]
            break
    if last == "Invalid data found when processing input":
        return f"not a media file (ffprobe: {last})"
    if last == "No such file or directory":
        return "file not found"
    return f"ffprobe: {last}"


async def probe(path_or_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, ffprobe: str = FFPROBE) -> Probe:
    """Probe one source; raises ProbeError with a one-line reason."""
    source = os.fspath(path_or_url)
    if not _URL.match(source):
        try:
            st = os.stat(source)
        except FileNotFoundError:
            raise ProbeError(source, "file not found") from None
        except OSError as exc:
            raise ProbeError(source, f"cannot read file ({exc.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            raise ProbeError(source, "a directory, not a media file")
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            raise ProbeError(source, "zero-length file")
    try:
        proc = await asyncio.create_subprocess_exec(
            *ffprobe_argv(source, ffprobe),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise ProbeError(source, f"{ffprobe} is not installed (install ffmpeg)") from None
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        raise ProbeError(source, f"ffprobe gave no answer within {timeout_s:g} s") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: never leave ffprobe running
            proc.kill()
            await proc.wait()
    err = stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise ProbeError(source, failure_reason(err, source))
    try:
        data = json.loads(stdout or b"{}")
    except json.JSONDecodeError:
        raise ProbeError(source, "ffprobe printed something that is not JSON") from None
    return parse_probe(data, source)
