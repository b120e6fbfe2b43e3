"""Where and in what precision to compute: the device, the CPU's kernels, and a precision chosen by measurement."""
from __future__ import annotations

import copy
import os
import time

import torch
import torch.nn.functional as F

from fernb.errors import ConfigError

# oneDNN ISA limits below AVX512_CORE_BF16: oneDNN emulates bf16 there, and still reports bf16 as supported
_NO_BF16_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; a device this machine lacks is refused in one line."""
    if name == "auto":
        mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r}: not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    have = {"cpu": 1, "cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0,
            "mps": int(bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))}
    if have.get(device.type, 0) <= (device.index or 0):
        raise ConfigError(f"device={name!r}: this machine has no such device; use auto (it picks what there is) or cpu")
    return device


def cpu_bf16() -> bool:
    """True where the CPU runs bf16 natively (AVX-512 BF16 or AMX) and oneDNN may use it (ONEDNN_MAX_CPU_ISA)."""
    if onednn_isa_limit().upper() in _NO_BF16_ISAS:
        return False
    try:  # private torch helpers; the oneDNN one honours ONEDNN_MAX_CPU_ISA=AVX2
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(native and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def onednn_isa_limit() -> str:
    """The ISA limit set for oneDNN (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA), or ''."""
    return os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA", "")


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision ('fp32' turns it off)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def seconds_per_step(model, x, y, device, precision: str, steps: int = 3) -> float:
    """Seconds per training step of a throwaway copy of the model, after one warm-up step."""
    m = copy.deepcopy(model).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    for i in range(steps + 1):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
        with autocast(device, precision):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps


def pick_precision(model, x, y, device: torch.device, precision: str = "auto") -> str:
    """'auto': on CUDA bf16 where it is native (compute capability 8.0+), else fp16 with a GradScaler;
    on a CPU fp32, or bf16 where the CPU has it natively and a timed trial finds it faster; elsewhere fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":  # is_bf16_supported() is also true on a T4, where bf16 is emulated and slow
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    if device.type != "cpu" or not cpu_bf16():
        return "fp32"  # no trial: emulated bf16 is several times slower, and the trial itself costs seconds
    # native bf16 doubles plain convs but slows depthwise ones (EfficientNet): measure, don't guess
    bf16, fp32 = (seconds_per_step(model, x, y, device, p) for p in ("bf16", "fp32"))
    return "bf16" if bf16 < 0.9 * fp32 else "fp32"


def cpu_class() -> str:
    """This CPU in a few words, as every figure and timing names it: threads, the kernels torch runs, bf16."""
    return (f"{torch.get_num_threads()}-thread CPU, {torch.backends.cpu.get_cpu_capability()} kernels, bf16 "
            f"{'native' if cpu_bf16() else 'not native'}")
