"""Typed transcoder errors. Each carries a snake_case `code`; the message is one human line."""

from __future__ import annotations


class TranscoderError(Exception):
    code = "transcoder_error"

    def __init__(self, reason: str) -> None:
        # A job's failure reason is shown to an operator as one line.
        self.reason = " ".join(str(reason).split()) or self.code
        super().__init__(self.reason)


class TranscodeError(TranscoderError):
    """ffmpeg failed, or its output is not what the packager needs."""

    code = "transcode_failed"


class TranscodeTimeout(TranscodeError):
    """ffmpeg ran past its wall-clock limit and was killed."""

    code = "transcode_timeout"


class SourceRejected(TranscoderError):
    """The source can never be transcoded (no streams, zero duration, ...): do not retry."""

    code = "source_rejected"


class TaskFailed(TranscoderError):
    """A task of the title's encode failed on its last attempt (its own retries are spent):
    the job fails with that task's reason, without another round of attempts."""

    code = "task_failed"


class BadIngestOption(TranscoderError):
    """An ingest option that does not fit the source (an `--audio-lang` index past its last
    audio stream): a usage error, nothing is stored."""

    code = "bad_ingest_option"
