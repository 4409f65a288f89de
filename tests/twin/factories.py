"""Record factories and a field-by-field record comparison for the twin tests."""

from __future__ import annotations

import numpy as np

from sdr_isac.fusion.records import Handover, LinkMeasurement, TargetEstimate, Track
from sdr_isac.sensing import Detection
from sdr_isac.twin import NodeDetection


def detection(rng: np.random.Generator, node_id: str = "bs0", t_s: float = 0.0, angle: bool = True) -> NodeDetection:
    r = float(rng.uniform(1, 500))
    return NodeDetection(node_id, t_s, Detection(
        range_m=r, velocity_mps=float(rng.normal(0, 10)), doppler_hz=float(rng.normal(0, 500)), delay_s=2 * r / 3e8,
        snr_db=float(rng.uniform(-10, 40)), geometry="monostatic", angle_rad=float(rng.uniform(-1, 1)) if angle else None,
        range_var_m2=float(rng.uniform(1e-4, 1)), velocity_var_mps2=float(rng.uniform(1e-4, 1)),
        angle_var_rad2=float(rng.uniform(1e-6, 1e-2)) if angle else None, map_snr_db=float(rng.uniform(0, 50))))


def link(rng: np.random.Generator, t_s: float = 0.0, placed: bool = True, angle: bool = False) -> LinkMeasurement:
    axis = rng.normal(size=3)
    return LinkMeasurement(
        tx=int(rng.integers(0, 4)), rx=int(rng.integers(0, 4)), range_m=float(rng.uniform(1, 900)),
        rate_mps=float(rng.normal(0, 20)), var_range_m2=float(rng.uniform(1e-4, 1)),
        var_rate_mps2=float(rng.uniform(1e-4, 1)), snr_re=float(rng.uniform(0.1, 1e3)), t_s=t_s,
        tx_id="bs-a" if placed else "", rx_id="bs-b" if placed else "",
        tx_position_m=rng.normal(size=3) * 100 if placed else None, rx_position_m=rng.normal(size=3) * 100 if placed else None,
        cone_angle_rad=float(rng.uniform(-1.5, 1.5)) if angle else None,
        var_cone_angle_rad2=float(rng.uniform(1e-5, 1e-2)) if angle else None,
        array_axis=axis / np.linalg.norm(axis) if angle else None)


def spd(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return a @ a.T + 1e-3 * np.eye(n)


def estimate(rng: np.random.Generator, t_s: float = 0.0, num_links: int = 2, velocity: bool = True,
             cross: bool = True) -> TargetEstimate:
    """An estimate; with ``velocity`` its covariance is one (6, 6) SPD matrix, whose off-diagonal blocks are the
    position-velocity cross-covariance where ``cross`` (else left out)."""
    joint = spd(rng, 6)
    return TargetEstimate(
        position_m=rng.normal(size=3) * 50, cov_position_m2=joint[:3, :3], t_s=t_s, nodes=("bs-a", "bs-b"),
        velocity_mps=rng.normal(size=3) * 10 if velocity else None,
        cov_velocity_mps2=joint[3:, 3:] if velocity else None,
        links=tuple(link(rng, t_s, angle=bool(i % 2)) for i in range(num_links)), mode="micro" if velocity else None,
        case="B" if velocity else None, single_m={"bs-a": (float(rng.normal()), float(rng.normal()))},
        cov_position_velocity_m2ps=joint[:3, 3:] if velocity and cross else None)


def track(rng: np.random.Generator, track_id: str = "T1", t0_s: float = 0.0, n: int = 5, dt_s: float = 0.1,
          handover: bool = True, status: str = "confirmed") -> Track:
    t = t0_s + dt_s * np.arange(n)
    hos = (Handover(float(t[n // 2]), "mecs-1", "mecs-2", "left coverage"),) if handover and n else ()
    return Track(track_id=track_id, t_s=t, states=rng.normal(size=(n, 6)) * 20,
                 covariances=np.stack([spd(rng, 6) for _ in range(n)]).reshape(n, 6, 6),
                 stations=("mecs-1", "mecs-2") if handover else ("mecs-1",), handovers=hos, status=status)


def same(a: object, b: object) -> bool:
    """Record equality field by field (arrays element-wise, exact; NaN equals NaN; nested records too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if hasattr(a, "__dataclass_fields__"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b

