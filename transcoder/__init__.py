"""Ladder planning, the ffmpeg pipeline and its read-back into the rendition model.

Pure modules (`ladder`, `command`, `mp4`) take values and return values; `runner` is the only
module that starts a process, `readback` the only one that reads the encoder's output files.
"""
