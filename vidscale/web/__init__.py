"""`vidscale serve`: a local web page to upscale pictures and videos (needs the `web` extra).

app (routes), jobs (the one-at-a-time queue on `run_job`), uploads (limits and checks),
choices (the model menu, from the presets), previews (the before/after pair),
guard (Host/Origin checks), events (server-sent events), serve (uvicorn), static/ (the page).
"""
