"""Load a model file into a spandrel descriptor without running its code.

Pickled checkpoints go through `torch.load(weights_only=True)`, which only
rebuilds tensors and plain containers; TorchScript is never loaded because
it carries code. ncnn pairs go through our own parser.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import spandrel
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vidscale.errors import ModelError, first_line
from vidscale.models.ncnn import parse_param
from vidscale.models.ncnn_convert import StateDict, final_resize, ncnn_to_state_dict

# spandrel's transformer architectures (SwinIR, HAT, DAT...) call torch.meshgrid without
# `indexing`; its default is the one they mean, so the deprecation notice is only noise to users
warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release", category=UserWarning)

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt")
MODEL_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES, ".param", ".bin")


def ncnn_pair(path: Path) -> tuple[Path, Path]:
    """The (.param, .bin) pair for either file of it."""
    param, weights = path.with_suffix(".param"), path.with_suffix(".bin")
    for p in (param, weights):
        if not p.is_file():
            raise ModelError(f"{p}: ncnn model needs both .param and .bin; this one is missing")
    return param, weights


def read_state_dict(path: Path) -> StateDict:
    """Read the raw state dict of a model file, chosen by its extension."""
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: unsupported model file type {suffix or '(none)'!r}")
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if suffix in (".param", ".bin"):
        return ncnn_to_state_dict(*ncnn_pair(path))[0]
    try:
        if suffix == ".safetensors":
            return load_file(str(path), device="cpu")
        if not _looks_like_checkpoint(path):
            raise ModelError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
        if _is_torchscript(path):  # before torch.load, which would warn and suggest weights_only=False
            raise ModelError(f"{path}: TorchScript files are not supported because they carry code; "
                             "use the model's state dict (.pth or .safetensors)")
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{path}: refused: it holds Python objects other than tensors, "
                         "and loading those could run code") from exc
    except (OSError, RuntimeError, ValueError, EOFError, SafetensorError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a readable model file ({first_line(exc)})") from exc
    except ModelError:
        raise
    except Exception as exc:  # malformed pickles fail in many ways
        raise ModelError(f"{path}: malformed model file ({first_line(exc)})") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def descriptor_from_state_dict(state: StateDict, origin: str) -> spandrel.ImageModelDescriptor:
    try:
        desc = spandrel.MAIN_REGISTRY.load(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError as exc:
        raise ModelError(f"{origin}: architecture not recognised by spandrel") from exc
    except Exception as exc:  # malformed tensors inside a recognised layout
        raise ModelError(f"{origin}: weights do not fit the architecture ({first_line(exc)})") from exc
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        raise ModelError(f"{origin}: {desc.architecture.name} is not an image-to-image model")
    if desc.input_channels != 3 or desc.output_channels != 3:
        raise ModelError(f"{origin}: only RGB models are supported (this one has "
                         f"{desc.input_channels} in, {desc.output_channels} out channels)")
    desc.model.eval()
    return desc


def load_descriptor(path: Path) -> spandrel.ImageModelDescriptor:
    """Load a model file of any supported kind as an evaluated spandrel model."""
    return descriptor_from_state_dict(read_state_dict(path), str(path))


def file_scale(path: Path, network_scale: int) -> int:
    """What a model file upscales by as its authors run it: an ncnn graph may end in a
    resize after its network (x4, then 0.5: x2), which `models import` records."""
    suffix = path.suffix.lower()
    if suffix in (".param", ".bin"):
        return max(1, round(network_scale * final_resize(parse_param(path.with_suffix(".param")))))
    if suffix == ".safetensors":
        try:
            with safe_open(str(path), "pt") as fh:
                recorded = (fh.metadata() or {}).get(FILE_SCALE_KEY)
        except (OSError, SafetensorError):
            return network_scale
        if recorded and recorded.isdigit() and int(recorded) > 0:
            return int(recorded)
    return network_scale


FILE_SCALE_KEY = "file_scale"  # safetensors metadata that `models import` writes


def _looks_like_checkpoint(path: Path) -> bool:
    """torch.save writes a zip archive; very old files are a raw pickle (protocol byte 0x80)."""
    with path.open("rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK") or head[:1] == b"\x80"


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save archives hold the module's compiled code (`code/`) and `constants.pkl`;
    a state dict saved by torch.save has neither."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False  # a raw pickle, or damaged: torch.load reports it
    return any("/code/" in n or n.endswith("/constants.pkl") for n in names)


def inference_parameter_count(model: torch.nn.Module) -> int:
    """Parameters the network computes with. Re-parameterised blocks (SPAN's
    Conv3XC) also hold their training branches, which fold into `eval_conv`
    and are not counted."""
    skipped: set[int] = set()
    for module in model.modules():
        if hasattr(module, "eval_conv"):
            folded = {id(p) for p in module.parameters()}
            skipped |= folded - {id(p) for p in module.eval_conv.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skipped)
