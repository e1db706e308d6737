"""gem: GPU-variability-aware expert placement for Mixture-of-Experts inference.

A drop-in for DeepSeek EPLB's ``rebalance_experts`` (same arguments, same results) that also takes
GPU speeds, a measured speed profile or per-step loads and then places experts so that every GPU
finishes each layer at the same time. numpy arrays in and out; torch tensors are accepted and
returned as torch tensors when torch is importable.

    import gem
    phy2log, log2phy, logcnt = gem.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)
    # variability-aware: GPU 0 is 27.7% slower than the others
    phy2log, log2phy, logcnt = gem.rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus,
                                                     gpu_speed=[1 / 1.277] + [1.0] * (num_gpus - 1))
"""

import numpy as _np

from . import _gem

__version__ = _gem.__version__
GemError = _gem.GemError

__all__ = ["rebalance_experts", "place", "evaluate", "GemError", "__version__"]


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _to_numpy(x, dtype):
    if x is None:
        return None
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    return _np.ascontiguousarray(_np.asarray(x, dtype=dtype))


def _weight(x):
    """weight for EPLB's call: float32 or float64 numpy arrays pass through (no copy; the C++ side
    reads either and converts rows to float32 as EPLB does), anything else becomes float64."""
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    x = _np.asarray(x)
    if x.dtype != _np.float32 and x.dtype != _np.float64:
        x = x.astype(_np.float64)
    return x


def _like(template, arr):
    """Returns `arr` as a torch tensor when `template` is one (on its device), else as is."""
    if template is not None and _is_torch(template):
        import torch

        return torch.from_numpy(_np.ascontiguousarray(arr)).to(template.device)
    return arr


def _gpu_time(num_gpus, gpu_speed):
    """Per-GPU time multipliers from relative speeds (1.0 = nominal, 0.78 = 22% slower in rate)."""
    if gpu_speed is None:
        return []
    speed = _to_numpy(gpu_speed, _np.float64).reshape(-1)
    if speed.size != num_gpus:
        raise GemError(f"gpu_speed holds {speed.size} values for {num_gpus} GPUs")
    if not _np.all(_np.isfinite(speed)) or _np.any(speed <= 0):
        raise GemError("gpu_speed values must be finite and positive")
    return list(1.0 / speed)


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus, *, gpu_speed=None, profile=None,
                      trace=None, strategy=None, shape="deepseek-v2-lite", seed=0):
    """DeepSeek EPLB's contract: returns (phy2log [L, P], log2phy [L, E, R], logcnt [L, E]).

    Without keyword arguments the result is EPLB's, bit for bit. With ``gpu_speed`` (relative speed
    per GPU, higher is faster), ``profile`` (path of a gem speed-profile JSON), ``trace`` (per-step
    loads [T, L, E]) or ``strategy`` ("gem", "speed_proportional", "eplb", "linear", "round_robin"),
    the placement comes from that strategy (default "gem") in engine-compatible mode: equal slots per
    GPU and an even split over replicas, which vLLM, SGLang and TRT-LLM load unchanged. ``shape``
    names the expert shape of the H200 speed model used when no profile is given.
    """
    if gpu_speed is None and profile is None and trace is None and strategy in (None, "eplb"):
        out = _gem.rebalance_experts(_weight(weight), int(num_replicas), int(num_groups), int(num_nodes), int(num_gpus))
    else:
        res = place(_to_numpy(weight, _np.float64), num_gpus, num_replicas=num_replicas, num_groups=num_groups,
                    num_nodes=num_nodes, strategy=strategy or "gem", gpu_speed=gpu_speed, profile=profile, trace=trace,
                    shape=shape, seed=seed)
        out = (res["phy2log"], res["log2phy"], res["logcnt"])
    return tuple(_like(weight, a) for a in out) if _is_torch(weight) else out


def place(weight, num_gpus, *, num_replicas=None, num_groups=1, num_nodes=1, strategy="gem", mode="engine",
          gpu_speed=None, profile=None, trace=None, shape="deepseek-v2-lite", seed=0):
    """Places experts with a strategy (as ``gem place`` does) and returns a dict with phy2log, log2phy,
    logcnt (EPLB's triple), slot_gpu and replica_share (per slot; speed-weighted in ``mode="extended"``).
    ``num_replicas`` defaults to the number of experts (no redundancy)."""
    w = _to_numpy(weight, _np.float64)
    if w.ndim != 2:
        raise GemError("weight must be 2-D [layers, experts]")
    slots = int(num_replicas) if num_replicas is not None else w.shape[1]
    res = _gem.place(w, int(num_gpus), slots, int(num_groups), int(num_nodes), str(strategy), str(mode),
                     _gpu_time(int(num_gpus), gpu_speed), str(shape), None if profile is None else str(profile),
                     _to_numpy(trace, _np.float64), int(seed))
    return {k: _like(weight, v) if k in ("phy2log", "log2phy", "logcnt") else v for k, v in res.items()}


def evaluate(placement, trace, num_gpus, *, gpu_speed=None, profile=None, shape="deepseek-v2-lite"):
    """Replays per-step loads ``trace`` [T, L, E] through a placement (a dict from ``place``, or a
    phy2log array in EPLB's rank-major convention) and returns mean, p50 and p99 straggler seconds
    (summed over layers), the fluid lower bound's mean and the ratio to it."""
    if isinstance(placement, dict):
        phy2log = placement["phy2log"]
        slot_gpu = placement.get("slot_gpu", [])
        share = placement.get("replica_share", [])
    else:
        phy2log, slot_gpu, share = placement, [], []
    res = _gem.evaluate(_to_numpy(phy2log, _np.int64), [list(map(int, r)) for r in slot_gpu],
                        [list(map(float, r)) for r in share], _to_numpy(trace, _np.float64), int(num_gpus),
                        _gpu_time(int(num_gpus), gpu_speed), str(shape), None if profile is None else str(profile))
    return res
