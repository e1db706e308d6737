#!/usr/bin/env python3
"""Summarizes scripts/gpu-check's benchmark outputs (Google Benchmark JSON with median aggregates,
and grouped_mm_anchor.py's JSON lines) into Markdown tables: routing, permute/combine against the
copy anchor, grouped GEMM and FFN against cuBLAS and torch._grouped_mm. Usage: summarize.py DIR."""
import json
import os
import sys

PATHS = {0: "auto", 1: "device", 2: "per_group", 3: "grouped", 4: "bucketed", 5: "chunked"}


def medians(path):
    out = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        data = json.load(f)
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"]).removesuffix("/manual_time")
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "us")]
        entry = dict(b)
        entry["us"] = b["real_time"] * scale
        if b.get("run_type") == "aggregate" or name not in out:
            out[name] = entry
    return out


def torch_times(path):
    out = {}
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                out[d["name"]] = d.get("us")
    return out


def fmt(us):
    if us is None:
        return "–"
    return f"{us / 1e3:.2f} ms" if us >= 1e4 else f"{us:.1f} µs"


def main():
    d = sys.argv[1]
    lines = []
    r = medians(os.path.join(d, "routing.json"))
    if r:
        lines += ["### Routing layout (per layout; graph of 16 back-to-back layouts)", "",
                  "| case | gem layout | anchor: copy ids |", "|---|---|---|"]
        for name, b in r.items():
            if name.endswith("/gem_layout"):
                base = name[: -len("/gem_layout")]
                a = r.get(base + "/anchor_copy_ids")
                lines.append(f"| {base} | {fmt(b['us'])} | {fmt(a['us']) if a else '–'} |")
        lines.append("")
    p = medians(os.path.join(d, "permute.json"))
    if p:
        lines += ["### Permute / combine (bytes read + written; graph replays)", "",
                  "| case | permute | TB/s | combine | TB/s | copy same bytes | TB/s | write permute's output (memset) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, b in p.items():
            if name.endswith("/gem_permute"):
                base = name[: -len("/gem_permute")]
                c, a = p.get(base + "/gem_combine"), p.get(base + "/anchor_copy")
                w = p.get(base + "/anchor_write")
                row = [base, fmt(b["us"]), f"{b['bytes'] / b['us'] / 1e6:.2f}"]
                row += [fmt(c["us"]), f"{c['bytes'] / c['us'] / 1e6:.2f}"] if c else ["–", "–"]
                row += [fmt(a["us"]), f"{a['bytes'] / a['us'] / 1e6:.2f}"] if a else ["–", "–"]
                row += [fmt(w["us"]) if w else "–"]
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    g = medians(os.path.join(d, "gemm.json"))
    t = torch_times(os.path.join(d, "torch.jsonl"))
    if g:
        copy = g.get("copy/2GiB/anchor_copy")
        copy_tbs = copy["bytes"] / copy["us"] / 1e6 if copy else None
        if copy_tbs:
            lines += [f"Copy bandwidth (2 GiB device-to-device, read + written): {copy_tbs:.2f} TB/s", ""]
        lines += ["### Grouped GEMM (gem automatic path vs anchors; ratio = anchor time / gem time)", "",
                  "| shape | T | gem auto (path) | TFLOP/s | gem device | TB/s (% copy) | gem per-group, 4 streams | "
                  "gem chunked | gem auto, 128-padded layout (path) | TFLOP/s | cuBLAS grouped | x | cuBLAS loop | x | "
                  "torch | x | gem auto unpadded vs torch |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, b in g.items():
            if not name.endswith("/gem_auto") or "/ffn/" in name:
                continue
            base = name[: -len("/gem_auto")]
            _, model, gemm, tt = base.split("/")
            dv = g.get(base + "/gem_device")
            cg = g.get(base + "/anchor_cublas_grouped")
            cl = g.get(base + "/anchor_cublas_loop")
            to = t.get(base + "/anchor_torch_grouped_mm")
            # the ratio columns compare anchors with gem's best automatic result (unpadded or padded layout)
            pd_ = g.get(base + "/gem_padded128")
            unpadded = b["us"]
            b = min([b] + ([pd_] if pd_ else []), key=lambda e: e["us"])
            row = [f"{model} {gemm}", tt[2:], f"{fmt(b['us'])} ({PATHS.get(int(b.get('path', -1)), '?')})",
                   f"{b['flops'] / b['us'] / 1e6:.0f}"]
            if dv:
                tbs = dv["weight_bytes"] / dv["us"] / 1e6
                cm = g.get(base + "/anchor_copy_matched")  # a copy moving the same bytes (decode sizes)
                share = f"{100 * tbs / copy_tbs:.0f}%" if copy_tbs else ""
                if cm:
                    share += f"; {100 * tbs / (cm['bytes'] / cm['us'] / 1e6):.0f}% of a same-size copy"
                row += [fmt(dv["us"]), f"{tbs:.2f}" + (f" ({share})" if share else "")]
            else:
                row += ["–", "–"]
            pg = g.get(base + "/gem_per_group_fanout")
            row.append(fmt(pg["us"]) if pg else "–")
            ch = g.get(base + "/gem_chunked")
            row.append(fmt(ch["us"]) if ch else "–")
            pd = g.get(base + "/gem_padded128")
            bk = g.get(base + "/gem_bucketed_pad32")
            row += ([f"{fmt(pd['us'])} ({PATHS.get(int(pd.get('path', -1)), '?')})"
                     + (f"; bucketed, 32-padded: {fmt(bk['us'])}" if bk else ""), f"{pd['flops'] / pd['us'] / 1e6:.0f}"]
                    if pd else ["–", "–"])
            for a in (cg["us"] if cg else None, cl["us"] if cl else None, to):
                row += [fmt(a), f"{a / b['us']:.2f}" if a else "–"]
            row.append(f"{to / unpadded:.2f}" if to else "–")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines += ["### Expert FFN (gate/up + SiLU·mul + down)", "",
                  "| shape | T | gem auto (path) | gem device | gem auto, 128-padded layout (path) | "
                  "cuBLAS grouped, both GEMMs | torch, both GEMMs |",
                  "|---|---|---|---|---|---|---|"]
        for name, b in g.items():
            if not (name.endswith("/gem_auto") and "/ffn/" in name):
                continue
            base = name[: -len("/gem_auto")]
            _, model, _, tt = base.split("/")
            dv = g.get(base + "/gem_device")
            pd = g.get(base + "/gem_padded128")
            gu, dn = base.replace("/ffn/", "/gate_up/"), base.replace("/ffn/", "/down/")
            cg = [g.get(x + "/anchor_cublas_grouped") for x in (gu, dn)]
            to = [t.get(x + "/anchor_torch_grouped_mm") for x in (gu, dn)]
            lines.append(f"| {model} | {tt[2:]} | {fmt(b['us'])} ({PATHS.get(int(b.get('path', -1)), '?')}) | "
                         f"{fmt(dv['us']) if dv else '–'} | "
                         + (f"{fmt(pd['us'])} ({PATHS.get(int(pd.get('path', -1)), '?')}) | " if pd else "– | ")
                         + f"{fmt(sum(x['us'] for x in cg)) if all(cg) else '–'} | "
                         f"{fmt(sum(to)) if all(x is not None for x in to) else '–'} |")
        lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
