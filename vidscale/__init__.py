"""vidscale: learned super-resolution for video, image sequences and photos."""

__version__ = "0.1.0"

from vidscale.upscaler import Upscaler, upscale_image  # noqa: E402

__all__ = ["Upscaler", "upscale_image", "__version__"]
