"""Segmented video jobs: a clip cut at keyframes, each piece upscaled and encoded on its own, the
pieces joined by remuxing. Pieces survive an interruption (the job resumes) and can run in parallel
(local worker processes or Ray)."""
