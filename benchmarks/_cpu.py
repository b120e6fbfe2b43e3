"""The CPU a benchmark ran on, in one line: every figure the benchmarks print names its CPU class."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from fernb.device import cpu_bf16, onednn_isa_limit

_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_summary() -> str:
    """The CPU's model, threads, the kernels torch uses and the flags that matter for speed."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    have = " ".join(f for f in _CPU_FLAGS if f in flags) or "none of " + "/".join(_CPU_FLAGS)
    return (f"CPU: {model}, {torch.get_num_threads()} threads, torch kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"flags {have}, bf16 {'native' if cpu_bf16() else 'not native (fp32 is used)'}"
            + (f", oneDNN limited to {onednn_isa_limit()}" if onednn_isa_limit() else ""))
