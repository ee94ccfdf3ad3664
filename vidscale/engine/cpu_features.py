"""What this CPU computes natively, and the precision a CPU run uses.

bf16 keeps float32's range with an 8-bit mantissa; CPUs with AVX512-BF16 (AMD Zen 4 and later,
Intel Cooper Lake) or AMX multiply it at about twice the float32 rate. Elsewhere it is emulated and
slower than float32, so `--precision auto` takes it only where it is native, and only for the
built-ins whose pictures it keeps (`cpu_precision` in engines/manifest.json, measured in
benchmarks/results/2026-12-08-cpu-precision.md).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from vidscale.errors import UsageError

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPU_PRECISIONS = ("fp32", "bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16() -> bool:
    return bool(BF16_FLAGS & cpu_flags())


def cpu_precision(wanted: str | None, model_default: str = "fp32") -> str:
    """"fp32" or "bf16" for a CPU run: `wanted` as given, or for "auto" the model's measured
    choice where the CPU has native bf16. fp16 and bf16 without hardware are refused."""
    wanted = (wanted or "auto").lower()
    if wanted == "fp16":
        raise UsageError("--precision fp16 needs a CUDA GPU (on the CPU: fp32, or bf16 where the CPU has it)")
    if wanted == "bf16" and not native_bf16():
        raise UsageError("--precision bf16 on the CPU needs native bf16 (AVX512-BF16 or AMX), which "
                         "this CPU lacks; use fp32")
    if wanted == "auto":
        return "bf16" if model_default == "bf16" and native_bf16() else "fp32"
    return wanted
