"""One-page HTML report of a recorded session: reconstruction, positions, dose, latencies,
counters and configuration.

    ptypilot report SESSION.h5 [--out SESSION.html]
    python3 -m ptypilot.report SESSION.h5 [--out SESSION.html]

It reads only the recording (hdf5_recorder.hpp's layout): any session `serve` recorded, also one
replayed or recovered. The figures are PNGs inside the page, so the page is one file that opens
offline. What a recording lacks is said on the page: a recovered file, or one written before
recordings kept their summary, has no latencies and no counters.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ptypilot.figures import SUB_SEQUENCE_COLOURS, add_scale_bar, pixel_centred_extent_A  # noqa: E402

def _is_alarm(name: str, value: int, normal: frozenset[str]) -> bool:
    return value != 0 and name not in normal


def _normal_operation() -> frozenset[str]:
    """The counters of normal operation, from the daemon's registry (`ptypilot counters`); every
    other one counts bad input or a fault, and is highlighted when it is not zero."""
    import ptypilot_core
    return frozenset(c["name"] for c in ptypilot_core.counters() if not c["alarm"])


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Recording:
    """What the report needs from a recording."""

    def __init__(self, path: Path):
        with h5py.File(path, "r") as f:
            self.attrs = {k: f.attrs[k] for k in f.attrs}
            self.positions_A = f["frames/position_A"][()]
            self.sub_sequence = f["frames/sub_sequence"][()]
            self.electrons = f["frames/electrons_per_frame"][()]
            self.timestamps_ns = f["frames/timestamp_ns"][()]
            self.subs = []
            for name in sorted(f.get("sub_sequences", {})):
                g = f["sub_sequences"][name]
                self.subs.append({"index": int(name),
                                  "proposed_A": g["proposed_A"][()],
                                  "approved_A": g["approved_A"][()],
                                  "potential": g["potential"][()] if "potential" in g else None})
        self.config = json.loads(self._text("config_json") or "{}")
        self.versions = json.loads(self._text("versions_json") or "{}")
        summary = self._text("summary_json")
        self.summary = json.loads(summary) if summary else None
        self.pixel_A = float(self.attrs.get("pixel_A", 0.0))

    def _text(self, key: str) -> str:
        value = self.attrs.get(key)
        if value is None:
            return ""
        return value.decode() if isinstance(value, bytes) else str(value)

    def fov(self) -> tuple[int, int, float, float]:
        """Where the scan's field of view lies in the potential: first row and column, height
        and width (Angstrom), as object_grid_for_fov places it."""
        session = self.config.get("session", {})
        raster = session.get("raster", {})
        window = session.get("probe", {}).get("window_px", 0)
        margin = session.get("margin_px", 0)
        first = window // 2 + margin
        height = (raster.get("rows", 1) - 1) * raster.get("step_A", 0.0)
        width = (raster.get("cols", 1) - 1) * raster.get("step_A", 0.0)
        return first, first, height, width


def _reconstruction_figure(rec: Recording) -> str | None:
    last = next((s for s in reversed(rec.subs) if s["potential"] is not None), None)
    if last is None or rec.pixel_A <= 0:
        return None
    r0, c0, height, width = rec.fov()
    rows = int(round(height / rec.pixel_A)) + 1
    cols = int(round(width / rec.pixel_A)) + 1
    phase = last["potential"][r0:r0 + rows, c0:c0 + cols]
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    shown = ax.imshow(phase, cmap="gray", extent=pixel_centred_extent_A(phase, rec.pixel_A))
    fig.colorbar(shown, ax=ax, label="phase (rad)")
    for k, s in enumerate(rec.subs):
        p = np.asarray(s["approved_A"])
        if len(p):
            ax.scatter(p[:, 1], p[:, 0], s=7, color=SUB_SEQUENCE_COLOURS[k % len(SUB_SEQUENCE_COLOURS)],
                       linewidths=0, label=f"sub-sequence {s['index']}")
    add_scale_bar(ax, phase.shape[1] * rec.pixel_A)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_title(f"after sub-sequence {last['index']}, with the approved positions")
    if rec.subs:
        ax.legend(loc="upper right", fontsize=7, markerscale=2, framealpha=0.8)
    fig.tight_layout()
    return _png(fig)


def _dose_figure(rec: Recording) -> str | None:
    """Electrons per square Angstrom, binned on the raster's step."""
    if not len(rec.positions_A):
        return None
    _, _, height, width = rec.fov()
    step = rec.config.get("session", {}).get("raster", {}).get("step_A", 0.0) or 1.0
    ny, nx = int(round(height / step)) + 1, int(round(width / step)) + 1
    dose, _, _ = np.histogram2d(rec.positions_A[:, 0], rec.positions_A[:, 1],
                                bins=(ny, nx), range=((-step / 2, height + step / 2),
                                                      (-step / 2, width + step / 2)),
                                weights=rec.electrons)
    dose /= step * step
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    shown = ax.imshow(dose, cmap="magma", extent=(-step / 2, width + step / 2, height + step / 2, -step / 2))
    fig.colorbar(shown, ax=ax, label="dose (e⁻/Å²)")
    add_scale_bar(ax, width + step)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    total = rec.electrons.sum() / max(height * width, 1e-12)
    ax.set_title(f"dose: {rec.electrons.sum():.3g} e⁻ in all, {total:.3g} e⁻/Å² over the field")
    fig.tight_layout()
    return _png(fig)


def _latency_figure(summary: dict) -> str | None:
    subs = summary.get("sub_sequences", [])
    if not subs:
        return None
    phases = ["reconstruct", "policy", "safety", "driver"]
    x = np.array([s["sub_sequence"] for s in subs])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = np.zeros(len(subs))
    for phase in phases:
        values = np.array([s["latency_ms"][phase] for s in subs])
        ax.bar(x, values, bottom=bottom, label=phase)
        bottom += values
    ax.plot(x, [s["latency_ms"]["total"] for s in subs], "k.-", label="total (last frame → next positions)")
    ax.set_xlabel("sub-sequence")
    ax.set_ylabel("latency (ms)")
    ax.set_xticks(x)
    ax.legend(fontsize=7)
    ax.set_title("decision latency per sub-sequence")
    fig.tight_layout()
    return _png(fig)


def _table(rows: list[tuple], header: tuple, alarm=None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for row in rows:
        cls = ' class="alarm"' if alarm and alarm(row) else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render(path: Path) -> str:
    rec = Recording(path)
    session_id = rec._text("session_id")
    complete = int(rec.attrs.get("complete", 0)) == 1
    error = rec._text("error")
    parts = [f"<h1>Session {html.escape(session_id)}</h1>",
             f"<p class=\"{'ok' if complete else 'alarm'}\">"
             + ("complete" if complete else "incomplete: " + html.escape(error or "no reason recorded"))
             + f" · {len(rec.positions_A)} frames recorded · {len(rec.subs)} sub-sequences"
             + (f" · policy {html.escape(rec.summary['policy'])}, reconstructor "
                f"{html.escape(rec.summary['reconstructor_backend'])}" if rec.summary else "")
             + f" · {html.escape(str(path))}</p>"]
    for title, image in (("Reconstruction and positions", _reconstruction_figure(rec)),
                         ("Dose", _dose_figure(rec))):
        parts.append(f"<h2>{title}</h2>")
        parts.append(f'<img alt="{title}" src="{image}">' if image else "<p>nothing recorded</p>")

    parts.append("<h2>Latencies</h2>")
    if rec.summary:
        image = _latency_figure(rec.summary)
        if image:
            parts.append(f'<img alt="Latencies" src="{image}">')
        rows = [(s["sub_sequence"], s["positions"],
                 *(f"{s['latency_ms'][k]:.2f}" for k in ("reconstruct", "policy", "safety", "driver", "total")),
                 f"{s['safety']['approved']} of {s['safety']['requested']}",
                 s["safety"]["clamped"] + s["safety"]["snapped"],
                 s["safety"]["non_finite"] + s["safety"]["deduplicated"] + s["safety"]["over_budget"])
                for s in rec.summary["sub_sequences"]]
        parts.append(_table(rows, ("sub-sequence", "positions", "reconstruct ms", "policy ms",
                                   "safety ms", "driver ms", "total ms", "approved", "moved by Safety",
                                   "dropped by Safety")))
    else:
        parts.append("<p>not in this recording (a recovered file, or one recorded before "
                     "recordings kept a summary)</p>")

    parts.append("<h2>Counters</h2>")
    if rec.summary:
        counters = sorted(rec.summary.get("counters", {}).items())
        normal = _normal_operation()
        parts.append(_table(counters, ("counter", "total since the daemon started"),
                            alarm=lambda row: _is_alarm(row[0], int(row[1]), normal)))
        for w in rec.summary.get("warnings", []):
            parts.append(f"<p class=\"alarm\">warning {html.escape(w['code'])}: {html.escape(w['message'])}</p>")
    else:
        parts.append("<p>not in this recording</p>")

    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(rec.config, indent=2, sort_keys=True))}</pre>")
    parts.append("<h2>Versions</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(rec.versions, indent=2, sort_keys=True))}</pre>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:1em auto;color:#222}"
             "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;"
             "padding:2px 6px;text-align:right}th{background:#eee}"
             "tr.alarm td,p.alarm{background:#fdd;color:#900}p.ok{color:#060}"
             "img{max-width:100%}pre{background:#f6f6f6;padding:0.5em;font-size:0.8em}")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>ptypilot session {html.escape(session_id)}</title><style>{style}</style>"
            "</head><body>" + "\n".join(parts) + "</body></html>\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ptypilot report", description=__doc__.splitlines()[0])
    # Optional to argparse, so that an unknown option is the error named first; required below.
    parser.add_argument("session", type=Path, nargs="?", help="a recording (SESSION.h5)")
    parser.add_argument("--out", type=Path, help="the HTML file (default: SESSION.html beside it)")
    parser.add_argument("--bin", type=Path, help=argparse.SUPPRESS)  # passed by `ptypilot report`
    args = parser.parse_args(argv)
    if args.session is None:
        parser.error("the recording to report on is required: ptypilot report SESSION.h5")
    if not args.session.is_file():
        parser.error(f"{args.session}: no such file")
    out = args.out or args.session.with_suffix(".html")
    try:
        page = render(args.session)
    except (OSError, KeyError) as e:
        print(f"ptypilot report: {args.session} is not a readable recording: {e}")
        return 1
    out.write_text(page, encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
