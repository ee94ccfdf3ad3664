"""Animated GIF, WebP and APNG: multi-frame clips whose frame durations are kept.

`header` walks a file's chunks for what FFmpeg does not hand out (frame and
loop counts; `is_animated` without decoding), `source` reads the frames
through PyAV, `sink` writes them with one of the `writers`, and
`gif_palette` picks the GIF colours. `formats` holds what reading and
writing share.
"""
