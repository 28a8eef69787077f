"""Pure Plotly figure builders: plain data (hourly/daily buckets, counts) in, a figure out.

The pages pass what the loaders return (already aggregated, a few hundred points at most), so
a year of probes never reaches the browser. Colours come from the one palette
(monitor.domain.evidence.CLASS_COLOUR): ok green, transient amber, contract red, no data grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.format import local, percent
from monitor.domain.evidence import CLASS_COLOUR, NO_DATA
from monitor.domain.history import state_class
from monitor.domain.maintenance import MAINTENANCE, MAINTENANCE_COLOUR

# Legend order and wording, the same on every chart.
CLASS_LABEL = {
    "ok": "ok",
    "transient": "transient failure",
    "contract": "contract break",
    NO_DATA: "no data",
}
# The status band also shows time held by maintenance windows and silences.
BAND_LABEL = {**CLASS_LABEL, MAINTENANCE: "maintenance"}
BAND_COLOUR = {**CLASS_COLOUR, MAINTENANCE: MAINTENANCE_COLOUR}
P50_COLOUR = "#0969da"
P95_COLOUR = "#8250df"
TOKENS_COLOUR = "#57606a"
FONT_SIZE = 15  # readable from across the room


def _wall(at: datetime, tz: ZoneInfo) -> datetime:
    """Wall-clock time in the viewer's zone, naive: Plotly draws naive times as given."""
    return local(at, tz).replace(tzinfo=None)


def _layout(fig: go.Figure, height: int, **extra: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        font={"size": FONT_SIZE},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        **extra,
    )
    return fig


def _block_text(b: Mapping[str, Any], tz: ZoneInfo) -> str:
    start, end = local(b["start"], tz), local(b["end"], tz)
    head = f"{start:%Y-%m-%d %H:%M} – {end:%H:%M}"
    quiet = b.get("quiet") or 0
    aside = f"<br>{quiet} probes in maintenance (not counted)" if quiet else ""
    if not b["probes"]:
        return f"{head}<br>no data (no probes)" if not quiet else f"{head}{aside}"
    counts = "<br>".join(f"{o}: {n}" for o, n in sorted(b["counts"].items(), key=lambda kv: -kv[1]))
    ok = percent(b["ok"] / b["probes"])
    return f"{head}<br>{b['probes']} probes, {ok} ok<br>{counts}{aside}"


def status_band(buckets: Sequence[Mapping[str, Any]], tz: ZoneInfo) -> go.Figure:
    """The status-page band: one coloured block per hour or day, grey where nothing ran.

    Each bucket is a dict with start, end, probes, ok, counts and worst
    (monitor.store.reads.Bucket.worst: no_data, ok or the worst class seen). One trace per
    class, so the legend names every colour even when a class is absent.
    """
    fig = go.Figure()
    for cls, label in BAND_LABEL.items():
        mine = [b for b in buckets if b["worst"] == cls]
        if cls == MAINTENANCE and not mine:
            continue  # named only where there was maintenance
        fig.add_trace(
            go.Bar(
                name=label,
                x=[_wall(b["start"], tz) for b in mine],
                y=[1] * len(mine),
                width=[(b["end"] - b["start"]).total_seconds() * 1000 * 0.92 for b in mine],
                offset=0,
                marker={"color": BAND_COLOUR[cls], "line": {"width": 0}},
                hovertext=[_block_text(b, tz) for b in mine],
                hoverinfo="text",
            )
        )
    if buckets:
        fig.update_xaxes(range=[_wall(buckets[0]["start"], tz), _wall(buckets[-1]["end"], tz)])
    fig.update_yaxes(visible=False, range=[0, 1], fixedrange=True)
    return _layout(fig, 140, barmode="overlay", bargap=0, showlegend=True)


def latency_chart(buckets: Sequence[Mapping[str, Any]], tz: ZoneInfo) -> go.Figure:
    """p50 and p95 per block; blocks without data break the line instead of faking a value."""
    x = [_wall(b["start"], tz) for b in buckets]
    fig = go.Figure()
    for key, name, colour, dash in (
        ("p50_ms", "p50", P50_COLOUR, "solid"),
        ("p95_ms", "p95", P95_COLOUR, "dot"),
    ):
        fig.add_trace(
            go.Scatter(
                name=name,
                x=x,
                y=[b[key] for b in buckets],
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 2},
                marker={"size": 4},
                connectgaps=False,
                hovertemplate=f"{name} %{{y:.0f}} ms<br>%{{x|%Y-%m-%d %H:%M}}<extra></extra>",
            )
        )
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    return _layout(fig, 300)


def stream_chart(buckets: Sequence[Mapping[str, Any]], tz: ZoneInfo) -> go.Figure:
    """A streamed target's time to first token (p50, p95) per block, and the median tokens
    per second on the right axis; blocks without streamed probes break the lines."""
    x = [_wall(b["start"], tz) for b in buckets]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name, colour, dash in (
        ("ttft_p50_ms", "TTFT p50", P50_COLOUR, "solid"),
        ("ttft_p95_ms", "TTFT p95", P95_COLOUR, "dot"),
    ):
        fig.add_trace(
            go.Scatter(
                name=name,
                x=x,
                y=[b[key] for b in buckets],
                mode="lines+markers",
                line={"color": colour, "dash": dash, "width": 2},
                marker={"size": 4},
                connectgaps=False,
                hovertemplate=f"{name} %{{y:.0f}} ms<br>%{{x|%Y-%m-%d %H:%M}}<extra></extra>",
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            name="tokens/s p50",
            x=x,
            y=[b["tokens_per_s_p50"] for b in buckets],
            mode="lines",
            line={"color": TOKENS_COLOUR, "width": 1.5},
            connectgaps=False,
            hovertemplate="%{y:.1f} tokens/s<br>%{x|%Y-%m-%d %H:%M}<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="ms to first token", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="tokens/s", rangemode="tozero", secondary_y=True)
    return _layout(fig, 300)


def outcome_bars(counts: Mapping[str, int], unit: str = "probes") -> go.Figure:
    """Horizontal bars, most frequent on top, each outcome in its class colour."""
    items = sorted(counts.items(), key=lambda kv: kv[1])  # Plotly draws the first at the bottom
    fig = go.Figure(
        go.Bar(
            x=[n for _, n in items],
            y=[o for o, _ in items],
            orientation="h",
            marker={"color": [CLASS_COLOUR[state_class(o)] for o, _ in items]},
            text=[f"{n:,}" for _, n in items],
            textposition="inside",
            insidetextanchor="end",
            textangle=0,
            hovertemplate=f"%{{y}}: %{{x}} {unit}<extra></extra>",
        )
    )
    # The counts are written on the bars; an axis would only add 0.5-incident ticks.
    fig.update_xaxes(visible=False, rangemode="tozero")
    return _layout(fig, 40 + 36 * max(1, len(items)), showlegend=False)


def outcome_runs(points: Sequence[Mapping[str, Any]], end: datetime) -> list[dict[str, Any]]:
    """Pure: consecutive points with one outcome as one run (start, end, outcome, probes), each
    lasting until the next run begins (the last until `end`): a few bars, not one per probe."""
    runs: list[dict[str, Any]] = []
    for p in points:
        if runs and runs[-1]["outcome"] == p["outcome"]:
            runs[-1]["probes"] += p.get("probes", 1)
            continue
        if runs:
            runs[-1]["end"] = p["at"]
        runs.append({"start": p["at"], "end": end, "outcome": p["outcome"], "probes": 0})
        runs[-1]["probes"] = p.get("probes", 1)
    return runs


def incident_timeline(
    points: Sequence[Mapping[str, Any]],
    window: tuple[datetime, datetime],
    tz: ZoneInfo,
    marks: Sequence[tuple[datetime, str]] = (),
) -> go.Figure:
    """One incident at probe resolution, in one figure: the outcome band on top (runs of one
    outcome coloured by class) and the latency of every probe below, with a dotted line at
    each transition (`marks`: time and label)."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.22, 0.78], vertical_spacing=0.04
    )
    runs = outcome_runs(points, window[1])
    for cls, label in CLASS_LABEL.items():
        mine = [r for r in runs if state_class(r["outcome"]) == cls]
        fig.add_trace(
            go.Bar(
                name=label,
                x=[_wall(r["start"], tz) for r in mine],
                y=[1] * len(mine),
                width=[(r["end"] - r["start"]).total_seconds() * 1000 for r in mine],
                offset=0,
                marker={"color": CLASS_COLOUR[cls], "line": {"width": 0}},
                hovertext=[
                    f"{r['outcome']}: {r['probes']} probe{'s' if r['probes'] != 1 else ''}<br>"
                    f"{local(r['start'], tz):%Y-%m-%d %H:%M:%S} – {local(r['end'], tz):%H:%M:%S}"
                    for r in mine
                ],
                hoverinfo="text",
                legendgroup=cls,
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            name="latency",
            x=[_wall(p["at"], tz) for p in points],
            y=[p["latency_ms"] for p in points],
            mode="lines",
            line={"color": P50_COLOUR, "width": 1.5},
            customdata=[[p["outcome"], p.get("http_status") or ""] for p in points],
            hovertemplate=(
                "%{y:.0f} ms, %{customdata[0]} %{customdata[1]}<br>"
                "%{x|%Y-%m-%d %H:%M:%S}<extra></extra>"
            ),
            connectgaps=False,
        ),
        row=2,
        col=1,
    )
    for at, text in marks:
        fig.add_vline(x=_wall(at, tz), line={"dash": "dot", "width": 1, "color": "#57606a"})
        fig.add_annotation(
            x=_wall(at, tz),
            y=1,
            yref="y2 domain",
            text=text,
            showarrow=False,
            yanchor="top",
            font={"size": 12},
            xanchor="left",
        )
    fig.update_xaxes(range=[_wall(window[0], tz), _wall(window[1], tz)])
    fig.update_yaxes(visible=False, range=[0, 1], fixedrange=True, row=1, col=1)
    fig.update_yaxes(title_text="ms", rangemode="tozero", row=2, col=1)
    return _layout(fig, 380, barmode="overlay", bargap=0, showlegend=True)
