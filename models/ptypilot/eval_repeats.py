"""`ptypilot eval --repeats N`: the whole evaluation N times, and how far its scores move.

For the same sessions the scored images are the same bits (data.converged_reconstruction runs
the CPU reconstructor, which does not depend on threads, load or FFTW timing), and so is the
daemon's online estimate on the CPU backend, which the heuristic and the learned policy read.
The CUDA backend sums its gradient with atomics, in whatever order the GPU runs them, so where
the daemon reconstructs on a GPU its estimates, and through them the adaptive positions and
every score, may move from run to run. This says by how much.

Run K (1..N) goes to OUT/repeat-K. OUT/eval.json (for --table1, each setting's) is run 1's, with
`repeats` and, per strategy, KEY_repeat_spread (max - min over the runs, null where a run has no
value) for each KEY of SPREAD_KEYS.
"""

from __future__ import annotations

import json
from pathlib import Path

SPREAD_KEYS = ("ssim_mean", "q_ssim_mean", "ssim_truth_mean", "q_ssim_truth_mean",
               "online_ssim_mean", "online_q_ssim_mean")


def with_spread(reports: list[dict]) -> dict:
    """Run 1's report, with the repeats and each strategy's spread over all the reports."""
    merged = json.loads(json.dumps(reports[0]))
    merged["repeats"] = len(reports)
    for policy, s in merged["strategies"].items():
        for key in SPREAD_KEYS:
            values = [r["strategies"].get(policy, {}).get(key) for r in reports]
            have = all(isinstance(v, (int, float)) for v in values)
            s[f"{key}_repeat_spread"] = float(max(values) - min(values)) if have else None
    return merged


def run(main, argv: list[str], out: Path, repeats: int, progress) -> int:
    """Runs main (ptypilot.evaluate.main) `repeats` times on argv, each with its own --out, and
    writes the merged reports. Returns the worst exit code."""
    code = 0
    for k in range(1, repeats + 1):
        progress(f"repeat {k}/{repeats}")
        code = max(code, main(argv + ["--out", str(out / f"repeat-{k}"), "--repeats", "1"]))
    first = out / "repeat-1"
    for report in sorted(first.rglob("eval.json")):
        relative = report.relative_to(first)
        reports = [json.loads((out / f"repeat-{k}" / relative).read_text())
                   for k in range(1, repeats + 1)]
        merged = with_spread(reports)
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(json.dumps(merged, indent=2))
        for policy, s in merged["strategies"].items():
            if s.get("skipped"):
                continue
            spread = s["q_ssim_mean_repeat_spread"]
            progress(f"{relative.parent}: {policy:12s} Q_SSIM spread over {repeats} runs "
                     + ("n/a" if spread is None else f"{100 * spread:.4f} %"))
    return code
