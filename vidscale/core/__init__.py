"""The bottom layer: errors aside (vidscale/errors.py, of the same layer), these modules import
nothing else from vidscale, and every other module may import them.

version (the package's), position (--start: a time or a frame), limits (pixels per input and
output frame), settings (what a job is asked to do: `JobSettings` and its parts by purpose,
`EncoderSettings`).
"""
