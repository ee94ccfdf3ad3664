"""int8 for the RRDB built-ins on the CPU (issue 22, item 3): speed and the picture.

    python benchmarks/int8_cpu.py [--model realesrgan-x4plus] [--parts sensitivity,crop,speed,haarpsi,png]
                                  [--variants a,b] [--calib 24x128] [--rounds 2] [--out results.json]

Variants are static post-training quantizations of the network with NNCF for OpenVINO (per-channel
int8 weights, per-tensor int8 activations) and PyTorch's FX path on oneDNN, calibrated on real
photos that are not the evaluation sets (`../shared/media/realesrgan_inputs` less OST_009, and
Urban100). They are compared with what vidscale runs: OpenVINO bf16 on the product's ONNX export
(`--precision auto` on this CPU) and OpenVINO float32.

Parts:
  sensitivity  fake-quantizes (in PyTorch) one group of convolutions at a time (a residual block, a
               tail conv) and reports the output's difference from float32 on a crop of OST_009:
               where int8 costs the picture.
  crop         each variant's largest and mean difference from float32 on that crop (1/255).
  speed        one 640x480 frame through each, taking turns in this process (ratios to bf16 hold
               on a shared machine; load averages are printed).
  haarpsi      HaarPSI change from float32 on Set5 + Set14 `--degrade web` (as `vidscale eval`).
  png          side-by-side crops of OST_009 (bicubic | fp32 | bf16 | each of --haarpsi-variants |
               their differences from fp32 x8).

NNCF quantizes the PyTorch-frontend conversion of the network, not the ONNX export: OpenVINO reads
the export's conv biases through a shape-dependent Broadcast, which NNCF does not see as biases.
Quantized models are cached in ~/.cache/vidscale/int8-bench (by variant and calibration).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_precision import inputs as eval_inputs  # noqa: E402
from vidscale.engine.openvino_builtin import _exported  # noqa: E402
from vidscale.evaluate import _quantize, score  # noqa: E402
from vidscale.media.image import flatten, read_picture, write_image  # noqa: E402
from vidscale.models import zoo  # noqa: E402
from vidscale.models.loading import load_descriptor  # noqa: E402
from vidscale.models.onnx_file import OpenVinoSession  # noqa: E402
from vidscale.resample import resize  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
PHOTOS = MEDIA / "realesrgan_inputs"
HELD_OUT = "OST_009"  # the photo the crops are judged on: never calibrated on
CACHE = Path.home() / ".cache" / "vidscale" / "int8-bench"
TEST_CROP = (slice(200, 296), slice(300, 428))  # 96x128 of OST_009: sky, roof and branches
PNG_AREAS = {"flat": (40, 150, 48), "textured": (220, 330, 48)}  # (y, x, side) in OST_009's input

Runner = Callable[[np.ndarray], np.ndarray]  # NCHW float32 in [0, 1] -> output NCHW float32


# --- data --------------------------------------------------------------------------------------

def load_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8; alpha flattened onto white, 16-bit reduced, gray expanded."""
    px = read_picture(path).pixels
    if px.shape[2] == 4:
        px = flatten(px)
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    if px.dtype == np.uint16:
        px = (px.astype(np.float32) / 257).round().astype(np.uint8)
    return np.ascontiguousarray(px[..., :3])


def nchw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32) / 255


def calibration_crops(n: int, side: int, seed: int = 0) -> list[np.ndarray]:
    """`n` random side x side crops, in turn from each calibration photo."""
    files = [p for p in sorted(PHOTOS.iterdir()) if p.is_file() and p.stem != HELD_OUT]
    files += sorted((MEDIA / "urban100").iterdir())
    photos = [load_rgb(p) for p in files]
    photos = [p for p in photos if min(p.shape[:2]) >= side]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - side + 1), rng.integers(0, p.shape[1] - side + 1)
        out.append(nchw(p[y:y + side, x:x + side]))
    return out


def to_255(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y * 255), 0, 255)


def hwc(y: np.ndarray) -> np.ndarray:
    """One NCHW output in [0, 1] as HxWx3 in 0..255."""
    return to_255(y)[0].transpose(1, 2, 0)


# --- the float paths ---------------------------------------------------------------------------

def ov_config(precision: str, threads: int) -> dict:
    """OpenVinoSession's settings (vidscale/models/onnx_file.py)."""
    import openvino as ov
    from openvino import properties
    from openvino.properties import hint, intel_cpu
    return {properties.inference_num_threads(): threads,
            hint.inference_precision(): ov.Type.bf16 if precision == "bf16" else ov.Type.f32,
            hint.enable_cpu_pinning(): False, intel_cpu.denormals_optimization(): True}


def compiled(model, precision: str, threads: int) -> Runner:  # type: ignore[no-untyped-def]
    import openvino as ov
    c = ov.Core().compile_model(model, "CPU", ov_config(precision, threads))
    return lambda x: c(x)[0]


def product_runner(name: str, precision: str, threads: int) -> Runner:
    """What vidscale itself runs: its cached ONNX export on OpenVINO, through OpenVinoSession."""
    info = zoo.resolve(name)
    export = _exported(info, load_descriptor(info.path))  # type: ignore[arg-type]
    session = OpenVinoSession(export, threads, precision)
    return lambda x: session.run(None, {"input": x})[0]


def float_ir(name: str):  # type: ignore[no-untyped-def]
    """The network through OpenVINO's PyTorch frontend (constant conv biases), cached as IR."""
    import openvino as ov
    path = CACHE / f"{name}-float.xml"
    if not path.is_file():
        module = load_descriptor(zoo.resolve(name).path).model.eval()  # type: ignore[arg-type]
        model = ov.convert_model(module, example_input=torch.rand(1, 3, 32, 32), input=[1, 3, -1, -1])
        CACHE.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, path, compress_to_fp16=False)
    return ov.Core().read_model(path)


# --- int8 variants -----------------------------------------------------------------------------

def _first_and_tail(model) -> list[str]:  # type: ignore[no-untyped-def]
    """Convolutions outside the residual trunk: the first, conv_body, upsampling, HR and last."""
    convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    return [n for n in convs if ".sub." not in n or ".sub.23" in n]


def nncf_kwargs(variant: str, model) -> dict:  # type: ignore[no-untyped-def]
    """nncf.quantize arguments of a variant; see VARIANTS."""
    import nncf
    from nncf.common.quantization.quantizer_propagation.structs import QuantizerPropagationRule
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    if variant == "nncf-default":
        return {}
    minmax = RangeEstimatorParametersSet.MINMAX
    adv = AdvancedQuantizationParameters(activations_range_estimator_params=minmax)
    kw: dict = {"advanced_parameters": adv}
    if variant == "nncf-minmax":
        return kw
    # Residual adds and scalings stay float, and each conv's input gets its own quantizer: the
    # trunk's skip path is never rounded to 8 bits.
    adv.quantizer_propagation_rule = QuantizerPropagationRule.DO_NOT_MERGE_BRANCHES
    names = _first_and_tail(model) if variant == "nncf-trunk-only" else []
    kw["ignored_scope"] = nncf.IgnoredScope(types=["Add", "Multiply"], names=names)
    return kw


VARIANTS = {
    "nncf-default": "NNCF defaults (performance preset, its default activation ranges), as last session",
    "nncf-minmax": "activation ranges from the calibration's min/max",
    "nncf-float-skip": "min/max; residual Add/Multiply float and unmerged quantizers (skip path float)",
    "nncf-trunk-only": "as nncf-float-skip, and the first conv and the tail convs float",
    "fx-onednn": "PyTorch FX, oneDNN backend: per-channel weights, min/max activations",
}


def nncf_model(name: str, variant: str, calib: tuple[int, int]):  # type: ignore[no-untyped-def]
    import nncf
    import openvino as ov
    path = CACHE / f"{name}-{variant}-{calib[0]}x{calib[1]}.xml"
    if path.is_file():
        return ov.Core().read_model(path)
    model = float_ir(name)
    crops = calibration_crops(*calib)
    t = time.perf_counter()
    quantized = nncf.quantize(model, nncf.Dataset(crops), subset_size=len(crops),
                              **nncf_kwargs(variant, model))
    print(f"# {variant}: quantized in {time.perf_counter() - t:.0f} s", flush=True)
    ov.save_model(quantized, path, compress_to_fp16=False)
    return quantized


def fx_runner(name: str, calib: tuple[int, int], threads: int) -> Runner:
    """PyTorch's FX post-training quantization on oneDNN (PT2E needs torchao, which is absent).

    Min/max observers: the backends' default histogram observers took over 8 minutes to calibrate.
    No reduced range: oneDNN's int8 convolutions use VNNI on this CPU."""
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver, QConfig, QConfigMapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = "onednn"
    weights = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    qconfig = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8), weight=weights)
    torch.set_num_threads(threads)
    module = load_descriptor(zoo.resolve(name).path).model.eval()  # type: ignore[arg-type]
    crops = calibration_crops(*calib)
    t = time.perf_counter()
    prepared = prepare_fx(module, QConfigMapping().set_global(qconfig), (torch.from_numpy(crops[0]),))
    with torch.no_grad():
        for c in crops:
            prepared(torch.from_numpy(c))
    quantized = convert_fx(prepared)
    print(f"# fx-onednn: quantized in {time.perf_counter() - t:.0f} s", flush=True)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return quantized(torch.from_numpy(x)).numpy()
    return run


def int8_runner(name: str, variant: str, calib: tuple[int, int], threads: int) -> Runner:
    """The variant, its float layers in bf16 (what this CPU would run next to int8)."""
    if variant == "fx-onednn":
        return fx_runner(name, calib, threads)
    return compiled(nncf_model(name, variant, calib), "bf16", threads)


# --- parts -------------------------------------------------------------------------------------

def test_crop() -> np.ndarray:
    return nchw(load_rgb(PHOTOS / f"{HELD_OUT}.png")[TEST_CROP])


def diff_255(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = np.abs(to_255(a) - to_255(b))
    return float(d.max()), float(d.mean())


def sensitivity(name: str, calib: tuple[int, int]) -> list[dict]:
    """Per group of convs, fake-quantized alone (per-channel symmetric weights, per-tensor min/max
    activations), in PyTorch float32: the output's difference from float32 on the test crop."""
    net = load_descriptor(zoo.resolve(name).path).model.eval()  # type: ignore[arg-type]
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    ranges: dict[str, tuple[float, float]] = {}

    def observe(n: str):  # type: ignore[no-untyped-def]
        def hook(_m, inp):  # type: ignore[no-untyped-def]
            lo, hi = ranges.get(n, (0.0, 0.0))
            ranges[n] = (min(lo, inp[0].min().item()), max(hi, inp[0].max().item()))
        return hook

    handles = [m.register_forward_pre_hook(observe(n)) for n, m in convs]
    x = torch.from_numpy(test_crop())
    with torch.no_grad():
        for c in calibration_crops(*calib):
            net(torch.from_numpy(c))
        for h in handles:
            h.remove()
        ref = net(x).numpy()
    groups: dict[str, list[str]] = {"first conv": ["model.0"]}
    for i in range(23):
        groups[f"RRDB {i}"] = [n for n, _ in convs if n.startswith(f"model.1.sub.{i}.")]
    groups["conv_body"] = ["model.1.sub.23"]
    groups.update({f"tail {n}": [n] for n in ("model.3", "model.6", "model.8", "model.10")})
    rows = []
    for group, members in groups.items():
        row = {"group": group}
        for label, acts in (("weights", False), ("weights+acts", True)):
            out = _fake_quantized(net, [(n, m) for n, m in convs if n in members], ranges, acts, x)
            row[label] = diff_255(out, ref)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _fake_quantized(net: torch.nn.Module, convs: list, ranges: dict, acts: bool,
                    x: torch.Tensor) -> np.ndarray:
    saved = {n: m.weight.data for n, m in convs}
    handles = []
    for n, m in convs:
        w = m.weight.data
        step = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
        m.weight.data = torch.clamp(torch.round(w / step), -127, 127) * step
        if acts:
            lo, hi = ranges[n]
            s = (hi - lo) / 255
            handles.append(m.register_forward_pre_hook(
                lambda _m, inp, lo=lo, s=s: (torch.clamp(torch.round((inp[0] - lo) / s), 0, 255) * s + lo,)))
    try:
        with torch.no_grad():
            return net(x).numpy()
    finally:
        for h in handles:
            h.remove()
        for n, m in convs:
            m.weight.data = saved[n]


def crop_errors(runners: dict[str, Runner]) -> dict[str, tuple[float, float]]:
    x = test_crop()
    outs = {k: r(x) for k, r in runners.items()}
    return {k: diff_255(v, outs["fp32"]) for k, v in outs.items() if k != "fp32"}


def speed(runners: dict[str, Runner], rounds: int, size: tuple[int, int]) -> dict:
    """Seconds per frame, taking turns; the median round per runner and its ratio to bf16."""
    width, height = size
    photo = load_rgb(MEDIA / "urban100" / "img_028.png")
    x = nchw(photo[:height, :width])
    for r in runners.values():
        r(x[..., :32, :32])  # warm
    times: dict[str, list[float]] = {k: [] for k in runners}
    load_before = os.getloadavg()
    for _ in range(rounds):
        for k, r in runners.items():
            t = time.perf_counter()
            r(x)
            times[k].append(time.perf_counter() - t)
            print(f"# {k}: {times[k][-1]:.2f} s", flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"load_before": load_before, "load_after": os.getloadavg(), "seconds": times, "median": med,
            "vs_bf16": {k: med["bf16"] / v for k, v in med.items()}}


def haarpsi_change(runners: dict[str, Runner], sets: list[str]) -> dict:
    """Mean and worst-image HaarPSI change from fp32, and the outputs' difference from fp32."""
    images = eval_inputs(sets, 4)
    deltas: dict[str, list[float]] = {k: [] for k in runners if k != "fp32"}
    diffs: dict[str, list[tuple[float, float]]] = {k: [] for k in deltas}
    base_scores = []
    for _name, truth, lr in images:
        outs = {k: _quantize(torch.from_numpy(r(nchw(lr)))) for k, r in runners.items()}
        base = score(outs["fp32"], truth, 4).haarpsi
        base_scores.append(base)
        for k in deltas:
            deltas[k].append(score(outs[k], truth, 4).haarpsi - base)  # type: ignore[operator]
            d = np.abs(outs[k].astype(np.int16) - outs["fp32"].astype(np.int16))
            diffs[k].append((float(d.max()), float(d.mean())))
    return {"images": len(images), "fp32_haarpsi": float(np.mean(base_scores)),
            **{k: {"delta_mean": float(np.mean(v)), "delta_worst": float(min(v)),
                   "max_diff": max(d[0] for d in diffs[k]),
                   "mean_diff": float(np.mean([d[1] for d in diffs[k]]))}
               for k, v in deltas.items()}}


def side_by_side(runners: dict[str, Runner], int8_names: list[str], path: Path) -> None:
    """Per area of OST_009 a row: bicubic | fp32 | bf16 | each int8 | each |int8 - fp32| x 8."""
    photo = load_rgb(PHOTOS / f"{HELD_OUT}.png")
    margin, rows = 8, []
    for y, x, side in PNG_AREAS.values():
        lr = photo[y - margin:y + side + margin, x - margin:x + side + margin]
        inner = (slice(4 * margin, 4 * (margin + side)),) * 2
        outs = {k: hwc(runners[k](nchw(lr)))[inner] for k in ("fp32", "bf16", *int8_names)}
        big = lr.shape[0] * 4
        bic = hwc(resize(torch.from_numpy(nchw(lr)).double(), (big, big)).numpy())[inner]
        diffs = [np.clip(np.abs(outs[k] - outs["fp32"]) * 8, 0, 255) for k in int8_names]
        rows.append(np.concatenate([bic, *outs.values(), *diffs], axis=1))
    write_image(path, np.concatenate(rows, axis=0).astype(np.uint8))


# --- main --------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="realesrgan-x4plus")
    ap.add_argument("--parts", default="sensitivity,crop,speed,haarpsi,png")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--haarpsi-variants", default="nncf-default,nncf-trunk-only")
    ap.add_argument("--calib", default="24x128", help="calibration crops: COUNTxSIDE")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--sets", default="set5,set14")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--png", type=Path, default=ROOT / "benchmarks/results/2026-12-08-int8-crops.png")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    calib = tuple(int(v) for v in args.calib.split("x"))
    parts, variants = args.parts.split(","), args.variants.split(",")
    results: dict = {"model": args.model, "calib": args.calib, "threads": args.threads}
    if "sensitivity" in parts:
        results["sensitivity"] = sensitivity(args.model, calib)  # type: ignore[arg-type]
    runners: dict[str, Runner] = {"fp32": compiled(float_ir(args.model), "fp32", args.threads),
                                  "bf16": product_runner(args.model, "bf16", args.threads)}
    for v in variants:
        runners[v] = int8_runner(args.model, v, calib, args.threads)  # type: ignore[arg-type]
    if "crop" in parts:
        results["crop"] = crop_errors(runners)
        print(json.dumps({"crop": results["crop"]}), flush=True)
    if "speed" in parts:
        fp32_product = product_runner(args.model, "fp32", args.threads)
        timed = {"bf16": runners["bf16"], "fp32": fp32_product, **{v: runners[v] for v in variants}}
        size = tuple(int(v) for v in args.size.split("x"))
        results["speed"] = speed(timed, args.rounds, size)  # type: ignore[arg-type]
        print(json.dumps({"speed": results["speed"]}), flush=True)
    if "haarpsi" in parts:
        chosen = {k: runners[k] for k in ["fp32", "bf16", *args.haarpsi_variants.split(",")]}
        results["haarpsi"] = haarpsi_change(chosen, args.sets.split(","))
        print(json.dumps({"haarpsi": results["haarpsi"]}), flush=True)
    if "png" in parts:
        side_by_side(runners, args.haarpsi_variants.split(","), args.png)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
