"""vidscale: learned super-resolution for video, image sequences and photos."""

__version__ = "0.1.0"

from vidscale.job import JobSettings, Summary, run_job  # noqa: E402
from vidscale.upscaler import Upscaler, upscale_image  # noqa: E402


def upscale(source: str, output: str, **settings: object) -> Summary:
    """Upscale a video, image, folder or pattern into `output`, as the CLI does.

    Keyword arguments are the fields of `JobSettings` (scale, model, device, batch...).
    """
    return run_job(str(source), str(output), JobSettings(**settings))  # type: ignore[arg-type]


__all__ = ["JobSettings", "Summary", "Upscaler", "upscale", "upscale_image", "__version__"]
