"""The Python binding keeps EPLB's contract exactly and adds gem's variability-aware placement."""
import json

import numpy as np
import pytest

import gem


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rebalance_experts_equals_every_eplb_reference_vector(eplb_vectors, dtype):
    for path in eplb_vectors:
        case = json.loads(path.read_text())
        weight = np.asarray(case["weight"], dtype=dtype)
        phy2log, log2phy, logcnt = gem.rebalance_experts(weight, case["num_replicas"], case["num_groups"],
                                                         case["num_nodes"], case["num_gpus"])
        assert phy2log.dtype == np.int64 and log2phy.dtype == np.int64 and logcnt.dtype == np.int64
        np.testing.assert_array_equal(phy2log, np.asarray(case["phy2log"]), err_msg=path.name)
        np.testing.assert_array_equal(log2phy, np.asarray(case["log2phy"]), err_msg=path.name)
        np.testing.assert_array_equal(logcnt, np.asarray(case["logcnt"]), err_msg=path.name)


def test_the_binding_core_equals_the_public_cpp_function_on_random_calls():
    """The binding writes EPLB's result straight into int64 numpy arrays (its own loop over the C++
    helpers); gem::rebalance_experts (nested vectors, int32) is the reference. Random shapes cover the
    hierarchical and global policies, heavy skew (many replicas), ties, float32/float64/int inputs
    and non-contiguous views."""
    rng = np.random.default_rng(2026)
    for trial in range(60):
        gpus = int(rng.choice([1, 2, 4, 8, 16]))
        nodes = int(rng.choice([n for n in (1, 2, 4) if gpus % n == 0]))
        groups = int(rng.choice([1, 2, 4, 8]))
        experts = groups * nodes * int(rng.integers(1, 5)) * int(rng.choice([1, 2]))
        slots = gpus * int(np.ceil(experts / gpus)) + gpus * int(rng.integers(0, 4))
        layers = int(rng.integers(1, 5))
        kind = trial % 4
        if kind == 0:
            weight = rng.zipf(1.3, size=(layers, experts)).astype(np.float64)  # skewed: many replicas
        elif kind == 1:
            weight = rng.integers(0, 4, size=(layers, experts)).astype(np.int64)  # ties, zeros, int dtype
        elif kind == 2:
            weight = (rng.random((layers, experts)) * 100).astype(np.float32)
        else:
            weight = (rng.random((experts, layers)) * 100).T  # a non-contiguous view
        args = (slots, groups, nodes, gpus)
        got = gem.rebalance_experts(weight, *args)
        ref = gem._gem.rebalance_experts_reference(np.asarray(weight, dtype=np.float64), *args)
        for g, r, name in zip(got, ref, ("phy2log", "log2phy", "logcnt")):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, np.asarray(r), err_msg=f"trial {trial} {name} {args}")
        assert got[1].shape[2] == got[2].max()


def test_calls_from_several_threads_give_the_serial_results():
    """The C++ work runs with the GIL released: concurrent calls on shared inputs must not interfere."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(8)
    calls = [(rng.zipf(1.4, size=(6, 64)).astype(dtype), slots, groups, nodes, gpus)
             for dtype in (np.float32, np.float64)
             for slots, groups, nodes, gpus in [(80, 8, 2, 16), (96, 4, 8, 16), (64, 1, 1, 8)]]
    serial = [gem.rebalance_experts(*c) for c in calls]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda c: gem.rebalance_experts(*c), calls * 4))
    for i, got in enumerate(threaded):
        for g, r in zip(got, serial[i % len(calls)]):
            np.testing.assert_array_equal(g, r, err_msg=f"call {i}")


def test_the_eplb_triple_is_consistent_for_every_strategy():
    rng = np.random.default_rng(3)
    weight = rng.zipf(1.6, size=(4, 32)).astype(np.float64)
    for strategy in ["eplb", "linear", "round_robin", "speed_proportional", "gem"]:
        phy2log, log2phy, logcnt = gem.rebalance_experts(weight, 40, 4, 2, 8, strategy=strategy,
                                                         gpu_speed=[0.8] + [1.0] * 7)
        assert phy2log.shape == (4, 40)
        for layer in range(4):
            counts = np.bincount(phy2log[layer], minlength=32)
            np.testing.assert_array_equal(counts, logcnt[layer], err_msg=strategy)
            for e in range(32):
                slots = [p for p in log2phy[layer, e] if p >= 0]
                assert len(slots) == logcnt[layer, e]
                assert all(phy2log[layer, p] == e for p in slots)


def _zipf_steps(rng, steps, layers, experts, tokens):
    """Per-step loads with a per-layer Zipf-like popularity and step-to-step noise."""
    out = np.zeros((steps, layers, experts))
    for layer in range(layers):
        pop = 1.0 / np.arange(1, experts + 1) ** 1.1
        pop = pop[rng.permutation(experts)]
        for s in range(steps):
            p = pop * rng.gamma(4.0, 0.25, size=experts)
            out[s, layer] = rng.multinomial(tokens, p / p.sum())
    return out


def test_gem_beats_eplb_under_the_high_variability_setup():
    rng = np.random.default_rng(11)
    trace = _zipf_steps(rng, 64, 3, 64, 1024 * 6)
    fit, held = trace[:32], trace[32:]
    weight = fit.mean(axis=0)
    speed = [1 / 1.277] + [1.0] * 7  # one GPU 27.7% slower
    eplb = gem.place(weight, 8, strategy="eplb")
    ours = gem.place(weight, 8, strategy="gem", gpu_speed=speed, trace=fit)
    r_eplb = gem.evaluate(eplb, held, 8, gpu_speed=speed)
    r_gem = gem.evaluate(ours, held, 8, gpu_speed=speed)
    assert r_gem["mean"] < 0.97 * r_eplb["mean"]
    assert r_gem["mean"] >= r_gem["fluid_bound"] * (1 - 1e-9)


def test_without_keywords_the_result_is_eplbs_and_with_speeds_it_differs():
    rng = np.random.default_rng(5)
    weight = rng.random((2, 16)) * 100
    a = gem.rebalance_experts(weight, 16, 1, 1, 4)
    b = gem.rebalance_experts(weight, 16, 1, 1, 4, strategy="eplb")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = gem.rebalance_experts(weight, 16, 1, 1, 4, gpu_speed=[0.5, 1, 1, 1])
    assert not np.array_equal(a[0], c[0])


def test_bad_input_raises_a_clear_error():
    with pytest.raises(gem.GemError, match="num_replicas"):
        gem.rebalance_experts(np.ones((2, 16)), 15, 1, 1, 4)
    with pytest.raises(gem.GemError, match="finite"):
        gem.rebalance_experts(np.array([[1.0, np.nan, 2.0, 3.0]]), 4, 1, 1, 2)
    with pytest.raises(gem.GemError, match="layer 1 expert 2 is -1"):
        gem.rebalance_experts(np.array([[1, 2, 3, 4], [1, 2, -1, 4]], dtype=np.float32), 4, 1, 1, 2)
    with pytest.raises(gem.GemError, match="2-D"):
        gem.rebalance_experts(np.ones(8), 8, 1, 1, 4)
    with pytest.raises(gem.GemError, match="num_gpus"):
        gem.rebalance_experts(np.ones((2, 8)), 8, 1, 1, 0)
    with pytest.raises(gem.GemError, match="gpu_speed holds 3 values"):
        gem.rebalance_experts(np.ones((1, 8)), 8, 1, 1, 4, gpu_speed=[1, 1, 1])
    with pytest.raises(gem.GemError, match="strategy must be one of"):
        gem.place(np.ones((1, 8)), 4, strategy="magic")


def test_torch_tensors_come_back_as_torch_tensors():
    torch = pytest.importorskip("torch")
    w = torch.rand(2, 16, dtype=torch.float64) * 10
    phy2log, log2phy, logcnt = gem.rebalance_experts(w, 20, 1, 1, 4)
    assert isinstance(phy2log, torch.Tensor) and phy2log.dtype == torch.int64
    ref = gem.rebalance_experts(w.numpy(), 20, 1, 1, 4)
    assert np.array_equal(phy2log.numpy(), ref[0])
