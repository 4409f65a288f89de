"""The stream's processes keep the memory they free (``executors.keep_freed_memory``): the fusion host, the core
host and a node agent make and drop a capture's buffers (MiB) per frame, and glibc's defaults would hand the
freed memory back to the system and fault every page in again for the next (some 40 page faults per 4 MiB
message received raw, 100 as the host decodes it; ``scripts/bench_stream.py --default-allocator``).

Shown in a fresh process each: after the process has started (and stopped) its host, run its node or run the
host's sensing task as a worker of the host's own process pool (not as a Dask worker, shared with other work), a loop
that makes and drops 8 MiB at a time faults (almost) nothing in; a fresh process that ran none of them faults
in ~2,000 pages per round (the control, as in ``tests/test_executors.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sdr_isac import executors
from tests.test_executors import _page_faults_of_a_churning_loop

pytestmark = pytest.mark.skipif(not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6")
                                and not os.path.exists("/lib64/libc.so.6"), reason="glibc only")


def _after(role: str, tmp: str) -> tuple[bool, int]:
    """In a fresh process: start and stop ``role`` ("host", "core", "node", "none"), then the churning loop."""
    from sdr_isac import config
    from sdr_isac.stream.demo import free_ports

    port, publish, core_pub = free_ports(3)
    if role == "host":
        from sdr_isac.stream import FusionHost

        cfg = config.from_dict(config.Config, {"stream": {"host_endpoint": f"tcp://127.0.0.1:{port}",
                                                          "publish_endpoint": f"tcp://127.0.0.1:{publish}"}})
        FusionHost(cfg).start().stop()
    elif role == "core":
        from sdr_isac.stream.core import CoreHost

        cfg = config.from_dict(config.Config, {"core": {"mecs_endpoints": [f"tcp://127.0.0.1:{port}"],
                                                        "mecs_ids": ["m"],
                                                        "publish_endpoint": f"tcp://127.0.0.1:{core_pub}"}})
        CoreHost(cfg, out_dir=Path(tmp)).start().stop()
    elif role == "node":
        from sdr_isac.stream.node import NodeAgent

        cfg = config.from_dict(config.Config, {"stream": {"host_endpoint": f"tcp://127.0.0.1:{port}", "frames": 1},
                                               "frame": {"numerology": 1, "num_rb": 24, "fft_size": 512,
                                                         "num_slots": 1},
                                               "radio": {"node_id": "n"}, "scene": {"nodes": [{"id": "n"}]}})
        NodeAgent(cfg).run()
    elif role in ("pool worker", "dask worker"):
        # the host's task as its own process pool (own_pool) or a Dask worker runs it
        from sdr_isac import radio
        from sdr_isac.fusion.engine import FusionEngine
        from sdr_isac.stream.host import _sense
        from sdr_isac.waveform import IsacFrame

        cfg = config.from_dict(config.Config, {"frame": {"numerology": 1, "num_rb": 24, "fft_size": 512,
                                                         "num_slots": 1},
                                               "radio": {"node_id": "n"}, "scene": {"nodes": [{"id": "n"}]}})
        with radio.open_radio(cfg) as r:
            frame = IsacFrame(cfg.frame)
            r.tx(frame.samples())
            capture = r.rx(frame.num_samples)
        _sense(capture, FusionEngine(cfg).sensing_jobs(capture), 0, False, role == "pool worker")
    kept = bool(executors._KEPT and executors._KEPT[0])
    return kept, _page_faults_of_a_churning_loop(False)[1]


@pytest.mark.parametrize("role", ["host", "core", "node", "pool worker"])
def test_a_stream_process_keeps_the_memory_it_frees(role: str, tmp_path: Path) -> None:
    with executors.make_executor("process", 1, start_method="spawn") as pool:
        kept, faults = pool.submit(_after, role, str(tmp_path)).result(timeout=120)
    with executors.make_executor("process", 1, start_method="spawn") as pool:
        plain, faults_plain = pool.submit(_after, "none", str(tmp_path)).result(timeout=120)
    assert kept and not plain
    assert faults_plain > 100 * 1000                # ~2048 per round with glibc's defaults
    assert faults < 0.05 * faults_plain, (faults, faults_plain)


def test_a_dask_worker_s_allocator_is_left_alone(tmp_path: Path) -> None:
    """A Dask worker may share its process with other work: the host's task does not change its allocator."""
    with executors.make_executor("process", 1, start_method="spawn") as pool:
        kept, faults = pool.submit(_after, "dask worker", str(tmp_path)).result(timeout=120)
    assert not kept and faults > 100 * 1000
