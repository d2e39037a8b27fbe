"""Prometheus metrics of one app: requests, latency, errors by code, system readings."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitoring.alerts import RequestWindow
from monitoring.system import SystemMonitor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _SystemCollector(Collector):
    """Reads the system monitor at scrape time, so the numbers are never stale."""

    def __init__(self, monitor: SystemMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._monitor.snapshot()
        yield GaugeMetricFamily("docchat_cpu_percent", "Machine CPU use in percent", value=snap["cpu_percent"])
        yield GaugeMetricFamily("docchat_ram_used_bytes", "Machine RAM in use", value=snap["ram_used_bytes"])
        yield GaugeMetricFamily("docchat_ram_total_bytes", "Machine RAM in all", value=snap["ram_total_bytes"])
        gpu_used = GaugeMetricFamily("docchat_gpu_memory_used_bytes", "GPU memory in use", labels=["device"])
        for device in (snap["gpu"] or {}).get("devices", []):
            gpu_used.add_metric([str(device["index"])], device["memory_used_bytes"])
        yield gpu_used


class Metrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self, monitor: SystemMonitor) -> None:
        self.registry = CollectorRegistry()
        self.window = RequestWindow()  # the recent error rate, for the alerts
        ProcessCollector(registry=self.registry)
        self.registry.register(_SystemCollector(monitor))
        self.requests = Counter(
            "docchat_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "docchat_http_request_duration_seconds", "Time to answer", ["route"], registry=self.registry
        )
        self.errors = Counter("docchat_errors", "Error responses by code", ["code"], registry=self.registry)
        self.ttft = Histogram("docchat_time_to_first_token_seconds", "From submission (queue included) to the "
                              "first generated token", ["model"], registry=self.registry,
                              buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128))
        self.decode_speed = Histogram("docchat_decode_tokens_per_second", "Decode speed of each answer after its "
                                      "first token", ["model"], registry=self.registry,
                                      buckets=(1, 2, 5, 10, 20, 40, 80, 160, 320, 640))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.window.record(status)
        self.latency.labels(route).observe(seconds)

    def observe_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def observe_generation(self, model: str, ttft_s: float | None, decode_tokens_per_s: float | None) -> None:
        if ttft_s is not None:
            self.ttft.labels(model).observe(ttft_s)
        if decode_tokens_per_s is not None:
            self.decode_speed.labels(model).observe(decode_tokens_per_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
