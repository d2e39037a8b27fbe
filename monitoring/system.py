"""CPU, RAM and GPU readings of this process and machine (psutil, torch.cuda)."""
from __future__ import annotations

import importlib.util
import sys
from typing import Any

import psutil


def _torch_cuda() -> Any:
    """torch.cuda when torch is installed, else None. Imported lazily: it costs seconds."""
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch.cuda


class SystemMonitor:
    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading only starts the clock

    def device(self) -> str:
        cuda = _torch_cuda()
        return "cuda" if cuda is not None and cuda.is_available() else "cpu"

    def snapshot(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        return {
            "cpu_percent": psutil.cpu_percent(None),
            "process_cpu_percent": self._process.cpu_percent(None),
            "ram_used_bytes": memory.total - memory.available,
            "ram_total_bytes": memory.total,
            "process_rss_bytes": self._process.memory_info().rss,
            "gpu": self.gpu(),
        }

    def memory_readings(self) -> dict[str, int]:
        """What the leak watch follows: this process's RSS and each GPU's allocated memory."""
        readings = {"process RSS": int(self._process.memory_info().rss)}
        for device in (self.gpu() or {}).get("devices", []):
            readings[f"GPU {device['index']} allocated"] = int(device["memory_allocated_bytes"])
        return readings

    def process_memory_share(self) -> float:
        """This process's RSS as a share of the machine's RAM."""
        return self._process.memory_info().rss / psutil.virtual_memory().total

    def gpu_memory_share(self) -> float | None:
        """The fullest GPU's memory in use as a share of its total; None without a GPU."""
        devices = (self.gpu() or {}).get("devices", [])
        return max((d["memory_used_bytes"] / d["memory_total_bytes"] for d in devices), default=None)

    def free_gpu_cache(self) -> None:
        """Give the CUDA caching allocator's unused blocks back to the device."""
        cuda = _torch_cuda()
        if cuda is not None and cuda.is_available():
            cuda.empty_cache()

    def resource_line(self) -> str:
        """One line of CPU, memory and GPU figures (the RESOURCE_LOG_S log line)."""
        snap = self.snapshot()
        line = (f"cpu {snap['cpu_percent']:.0f}% (this process {snap['process_cpu_percent']:.0f}%), "
                f"ram {snap['ram_used_bytes'] / 2**30:.1f}/{snap['ram_total_bytes'] / 2**30:.1f} GiB, "
                f"process rss {snap['process_rss_bytes'] / 2**20:.0f} MiB")
        for device in (snap["gpu"] or {}).get("devices", []):
            line += (f", gpu{device['index']} {device['memory_used_bytes'] / 2**30:.1f}/"
                     f"{device['memory_total_bytes'] / 2**30:.1f} GiB")
        return line

    def gpu(self) -> dict[str, Any] | None:
        """Memory of each visible CUDA device, or None without one."""
        cuda = _torch_cuda()
        if cuda is None or not cuda.is_available():
            return None
        devices = []
        for index in range(cuda.device_count()):
            free, total = cuda.mem_get_info(index)
            devices.append({
                "index": index,
                "name": cuda.get_device_name(index),
                "memory_used_bytes": total - free,
                "memory_total_bytes": total,
                "memory_allocated_bytes": cuda.memory_allocated(index),
            })
        return {"devices": devices}
