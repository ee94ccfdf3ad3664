"""Run Real-ESRGAN's `inference_realesrgan_video.py` on today's torch, on the CPU.

    python realesrgan_shim.py SCRIPT [its arguments]

Three things stop the script as published from running here; each is bridged
at run time and the script itself is run unchanged:
- basicsr 1.4.2 imports `torchvision.transforms.functional_tensor`, removed from
  torchvision 0.17: aliased to `torchvision.transforms.functional`;
- basicsr imports `distutils`, gone from Python 3.12: setuptools supplies it;
- without a GPU the script starts one worker per GPU, i.e. none, and calls
  `torch.cuda.synchronize()` after each frame, which fails: there it counts
  one device (one worker, which RealESRGANer puts on the CPU) and the
  synchronisation is a no-op (there is nothing to wait for on the CPU).
"""

import runpy
import sys

import setuptools  # noqa: F401  (installs the distutils shim)
import torch
import torchvision.transforms.functional as functional

sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)
if not torch.cuda.is_available():
    torch.cuda.device_count = lambda: 1
    torch.cuda.synchronize = lambda device=None: None

script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
