"""Pure builders for the Overview as a wall screen: the target list as one HTML table, the flags
grouped by cause, filters, grouping, pending states and the no-network banner.

No Streamlit here: the loaders' plain dicts in, HTML out, so what the wall shows is unit-tested.
The whole list is one element (one `st.html`): a page of 1,000 targets is a few thousand plain
DOM nodes instead of ~84 Streamlit elements per target. Every value is escaped (target names,
provider messages and URLs are untrusted); the history bar is a CSS gradient on one <span>.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from dashboard import format as f
from monitor.domain.evidence import CLASS_COLOUR, NO_DATA, Outcome
from monitor.domain.history import state_class
from monitor.domain.maintenance import MAINTENANCE, MAINTENANCE_COLOUR
from monitor.domain.states import Rules

Row = Mapping[str, Any]

PENDING = "pending"
NO_DATA_WORDS = "no data"
# The state filter's choices, in the order the list is sorted: failing first.
STATE_CHOICES = ("contract", "transient", PENDING, "ok", NO_DATA_WORDS)
RANK = {name: i for i, name in enumerate(STATE_CHOICES)}
GROUPS = ("none", "tag", "kind", "provider", "state")
UNTAGGED = "(no tag)"
# From this many targets the list is grouped by default (by tag when there are tags).
GROUP_FROM = 200
# The kiosk view: rows per column at 1080 px, and how many targets it shows in full.
KIOSK_ROWS = 34
KIOSK_COLUMNS = 3
PROVIDERS = {"hf": "Hugging Face", "openai": "OpenAI"}


def provider(kind: str) -> str:
    """The kind's provider family: hf-* -> Hugging Face, openai-* -> OpenAI, http -> http."""
    if not kind:
        return "unknown"
    return PROVIDERS.get(kind.split("-", 1)[0], kind)


# ---------------------------------------------------------------- state of one row


@dataclass(frozen=True)
class Shown:
    """What a row's state column says: the pill's words and colour key, and its class."""

    label: str
    colour: str  # a CLASS_COLOUR key
    group: str  # one of STATE_CHOICES
    pending: bool = False


def shown_state(row: Row, rules: Rules | None = None) -> Shown:
    """The accepted state, or a failure the state machine is still confirming on a working
    (or new) target: "server_error, confirming 1 of 3" instead of "ok" or "no data". A failing
    target stays in its failing state until a change is confirmed."""
    rules = rules or Rules()
    state, candidate, streak = row.get("state"), row.get("candidate"), row.get("streak") or 0
    if candidate and candidate != Outcome.OK and state in (None, Outcome.OK):
        try:
            outcome = Outcome(candidate)
        except ValueError:
            outcome = None
        if outcome is not None:
            needed = rules.threshold(outcome)
            if streak < needed:
                label = f"{candidate}, confirming {streak} of {needed}"
                return Shown(label, state_class(candidate), PENDING, pending=True)
    if state is None:
        return Shown(NO_DATA_WORDS, NO_DATA, NO_DATA_WORDS)
    cls = state_class(state)
    return Shown(state, cls, cls if cls in RANK else NO_DATA_WORDS)


def rules_of(info: Any) -> Rules | None:
    """Rules from a settings.TargetInfo (None: the defaults)."""
    if info is None:
        return None
    return Rules(
        failure_threshold=info.failure_threshold,
        success_threshold=info.success_threshold,
        contract_threshold=info.contract_threshold,
    )


@dataclass(frozen=True)
class Entry:
    """One target on the wall: its loaded row, its config facts and what its state shows."""

    row: Row
    shown: Shown
    tags: tuple[str, ...] = ()
    kind: str = ""

    @property
    def name(self) -> str:
        return str(self.row["name"])

    @property
    def provider(self) -> str:
        return provider(self.kind)


def entries(rows: Iterable[Row], catalog: Sequence[Any] = ()) -> list[Entry]:
    """Rows with their config (tags, kind, thresholds), failing first, then by name."""
    info = {i.name: i for i in catalog}
    out = []
    for r in rows:
        i = info.get(r["name"])
        kind = r.get("kind") or (i.kind if i else "")
        out.append(Entry(r, shown_state(r, rules_of(i)), tuple(i.tags) if i else (), kind))
    return sorted(out, key=lambda e: (RANK[e.shown.group], e.name))


@dataclass(frozen=True)
class Filters:
    states: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    def keep(self, e: Entry) -> bool:
        return (
            (not self.states or e.shown.group in self.states)
            and (not self.kinds or e.kind in self.kinds)
            and (not self.tags or bool(set(e.tags) & set(self.tags)))
            and (not self.providers or e.provider in self.providers)
        )

    @property
    def active(self) -> bool:
        return bool(self.states or self.kinds or self.tags or self.providers)


def default_group(count: int, has_tags: bool) -> str:
    """Ungrouped up to GROUP_FROM targets; beyond, by tag when there are tags, else by kind."""
    if count < GROUP_FROM:
        return "none"
    return "tag" if has_tags else "kind"


def grouped(
    items: Sequence[Entry], by: str, tags: Sequence[str] = ()
) -> list[tuple[str, list[Entry]]]:
    """(heading, entries) per group, in order; a target with two tags is in both groups
    (only the groups of `tags` when the list is filtered by tag)."""
    if by not in GROUPS or by == "none":
        return [("", list(items))]
    groups: dict[str, list[Entry]] = defaultdict(list)
    for e in items:
        if by == "tag":
            for tag in e.tags or (UNTAGGED,):
                if not tags or tag in tags:
                    groups[tag].append(e)
        elif by == "kind":
            groups[e.kind or "unknown"].append(e)
        elif by == "provider":
            groups[e.provider].append(e)
        else:
            groups[e.shown.group].append(e)
    if by == "state":
        order = sorted(groups, key=lambda g: RANK.get(g, len(RANK)))
    else:  # the groups that need someone first, then by name
        order = sorted(groups, key=lambda g: (min(RANK[e.shown.group] for e in groups[g]), g))
    return [(g, groups[g]) for g in order]


def counts(items: Iterable[Entry]) -> dict[str, int]:
    """Targets per state group, failing first."""
    found = Counter(e.shown.group for e in items)
    return {s: found[s] for s in STATE_CHOICES if found[s]}


def no_network(rows: Iterable[Row]) -> bool:
    """Every target with data answers dns_error right now: the fault is most likely here."""
    latest = [r.get("candidate") or r.get("state") for r in rows]
    seen = [o for o in latest if o]
    return bool(seen) and all(o == Outcome.DNS_ERROR for o in seen)


# ---------------------------------------------------------------- flags grouped by cause


@dataclass
class Cause:
    """One reason that needs action, with every target it hits."""

    state: str
    key: str  # the replacement URL, the missing permission, or the provider's words
    detail: str
    hint: str
    replacement: str | None = None
    permission: str | None = None
    since: datetime | None = None
    targets: list[str] = field(default_factory=list)


def _flat(text: str | None) -> str:
    return " ".join((text or "").split())


def group_flags(flags: Iterable[Row]) -> list[Cause]:
    """One cause per outcome and replacement URL / missing permission / detail, in order of
    the first flag; the earliest `since` of its targets."""
    causes: dict[tuple[str, str], Cause] = {}
    for flag in flags:
        state, facts = str(flag["state"]), flag.get("facts") or {}
        detail, hint = _flat(flag.get("detail")), _flat(flag.get("hint"))
        url = f.replacement_url(detail, hint, facts) if state == "deprecated" else None
        permission = f.missing_permission(hint, facts) if state == "token_scope" else None
        key = url or permission or detail
        cause = causes.setdefault(
            (state, key), Cause(state, key, detail, hint, url, permission, flag.get("since"))
        )
        cause.targets.append(str(flag["target"]))
        since = flag.get("since")
        if since is not None and (cause.since is None or since < cause.since):
            cause.since = since
    return list(causes.values())


def target_href(name: str) -> str:
    """The target page's URL relative to the app root (emails use the same /target?name=)."""
    return escape(f"target?name={quote(name, safe='')}")


def _link(name: str) -> str:
    return f'<a href="{target_href(name)}" target="_self">{escape(name)}</a>'


def flags_html(causes: Sequence[Cause], tz: ZoneInfo, compact: bool = False) -> str:
    """Every cause as one card: what happened, to which targets, and what to do, once.
    `compact` (the wall): one line each, without the provider's words."""
    cards = []
    for c in causes:
        n = len(c.targets)
        shown = []
        if c.replacement:
            url = escape(c.replacement)
            web = c.replacement.startswith(("https://", "http://"))  # never a javascript: link
            shown.append(
                f"Replacement: <a href='{url}'>{url}</a>" if web else f"Replacement: {url}"
            )
        if c.permission:
            shown.append(f"Missing token permission: <b>{escape(c.permission)}</b>")
        names = ", ".join(_link(t) for t in c.targets)
        lines = [
            f"{pill(c.state, state_class(c.state))} <b>{n} target{'s' if n != 1 else ''}</b> "
            f"<span class='iw-d'>since {escape(f.when(c.since, tz))}</span>: {names}",
            *shown,
            f"<span class='iw-d'>{escape(c.detail)}</span>" if c.detail and not compact else "",
            f"→ {escape(c.hint)}" if c.hint else "",
        ]
        body = (" · " if compact else "<br>").join(line for line in lines if line)
        cards.append(
            f"<div class='iw-f' style='border-left:6px solid {f.colour(c.state)}'>{body}</div>"
        )
    return "".join(cards)


# ---------------------------------------------------------------- the table


CSS = """<style>
.iw{font-size:14px;line-height:1.3}
.iw table.iw-t{border-collapse:collapse;width:100%;margin:0 0 .8em 0;border:none}
.iw table.iw-t th{text-align:left;font-weight:600;opacity:.75;padding:2px 6px!important;
 border:none!important;border-bottom:1px solid rgba(127,127,127,.4)!important;
 white-space:nowrap;background:none!important}
.iw table.iw-t td{padding:2px 6px!important;border:none!important;
 border-bottom:1px solid rgba(127,127,127,.15)!important;white-space:nowrap;
 vertical-align:middle}
.iw table.iw-t td.iw-w{white-space:normal;min-width:14em}
.iw table.iw-t td.iw-r,.iw table.iw-t th.iw-r{text-align:right}
.iw .iw-p{color:#fff;border-radius:999px;padding:0 .6em;font-weight:600;white-space:nowrap}
.iw .iw-o{border:2px solid;border-radius:999px;padding:0 .5em;font-weight:600;
 white-space:nowrap}
.iw .iw-b{display:inline-block;width:120px;height:12px;vertical-align:middle;
 -webkit-mask:repeating-linear-gradient(90deg,#000 0 4px,transparent 4px 5px);
 mask:repeating-linear-gradient(90deg,#000 0 4px,transparent 4px 5px)}
.iw .iw-d{opacity:.72}
.iw .iw-f{padding:.35em .8em;margin:0 0 .5em 0;background:rgba(127,127,127,.08);
 border-radius:4px}
.iw h4{margin:.6em 0 .2em 0;padding:0;font-size:1.05em}
.iw a{text-decoration:none;font-weight:600}
.iw .iw-k{display:grid;gap:0 14px;align-items:start}
.iw .iw-k table.iw-t td,.iw .iw-k table.iw-t th{padding:1px 5px!important}
.iw-kiosk{font-size:16px;line-height:1.25}
.iw-kiosk .iw-f{padding:.15em .6em;margin:0 0 .3em 0}
.iw-kiosk .iw-b{width:96px;height:14px;
 -webkit-mask:repeating-linear-gradient(90deg,#000 0 3px,transparent 3px 4px);
 mask:repeating-linear-gradient(90deg,#000 0 3px,transparent 3px 4px)}
</style>"""

HEADINGS = ("Target", "Kind", "State", "Since", "Last 24 h", "24 h", "30 d", "p50", "Last change")
KIOSK_HEADINGS = ("Target", "State", "Since", "Last 24 h", "24 h")


def pill(label: str | None, cls: str, pending: bool = False) -> str:
    """A state pill in the class colour; a pending change is outlined, not filled."""
    fill = CLASS_COLOUR.get(cls, CLASS_COLOUR[NO_DATA])
    text = escape(label or NO_DATA_WORDS)
    if pending:
        return f"<span class='iw-o' style='color:{fill}'>{text}</span>"
    return f"<span class='iw-p' style='background:{fill}'>{text}</span>"


# An hour of the history bar is a class, no data, or held by maintenance.
HOUR_COLOUR = {**CLASS_COLOUR, MAINTENANCE: MAINTENANCE_COLOUR}


def history_bar(hours: Sequence[str]) -> str:
    """The last hours as one span: a hard-stop gradient, one stop range per run of a colour;
    the gaps between cells are a CSS mask, so a cell is never a DOM node."""
    if not hours:
        return ""
    n, stops, start = len(hours), [], 0
    for i in range(1, n + 1):
        if i == n or hours[i] != hours[start]:
            hue = HOUR_COLOUR.get(hours[start], CLASS_COLOUR[NO_DATA])
            stops.append(f"{hue} {start * 100 / n:.2f}% {i * 100 / n:.2f}%")
            start = i
    tally = Counter(NO_DATA_WORDS if h == NO_DATA else h for h in hours)
    title = f"last {n} h: " + ", ".join(f"{k} {v} h" for k, v in tally.most_common())
    return (
        f"<span class='iw-b' title='{escape(title)}' "
        f"style='background:linear-gradient(90deg,{','.join(stops)})'></span>"
    )


def _since(e: Entry, now: datetime) -> str:
    at = e.row.get("streak_since") if e.shown.pending else e.row.get("since")
    return escape(f.lasted(at, now)) if at else f.DASH


def _change(row: Row, tz: ZoneInfo, width: int = 90) -> str:
    label = _flat(row.get("last_change")) or f.DASH
    parts = [escape(label)]
    if row.get("last_change_at"):
        parts.append(f"<span class='iw-d'>{escape(f.when(row['last_change_at'], tz))}</span>")
    now_says = f.evidence(row.get("state"), row.get("http_status"), row.get("detail") or "", 400)
    if now_says:
        short = now_says if len(now_says) <= width else now_says[: width - 1].rstrip() + "…"
        parts.append(f"<span class='iw-d' title='{escape(now_says)}'>{escape(short)}</span>")
    return " · ".join(parts)


def regional_flag(row: Row) -> str:
    """A compact mark for regions whose own state differs from the target's (an open regional
    observation); the target's pill keeps its own colour. Nothing with one region."""
    regions = row.get("regional") or ()
    if not regions:
        return ""
    names = escape(", ".join(regions))
    tip = escape(
        f"seen differently from {', '.join(regions)}; the quorum of regions did not follow"
    )
    return f" <span class='iw-d' title='{tip}'>regional: {names}</span>"


def _row(e: Entry, now: datetime, tz: ZoneInfo, kiosk: bool) -> str:
    r, s = e.row, e.shown
    uptime = r.get("uptime") or {}
    cells = [
        _link(e.name),
        *(() if kiosk else (escape(e.kind or f.DASH),)),
        pill(s.label, s.colour, s.pending) + regional_flag(r),
        _since(e, now),
        history_bar(r.get("hours") or ()),
        f"<td class='iw-r'>{f.percent(uptime.get('24h'))}",
        *(
            ()
            if kiosk
            else (
                f"<td class='iw-r'>{f.percent(uptime.get('30d'))}",
                f"<td class='iw-r'>{f.millis(r.get('p50_ms'))}",
                f"<td class='iw-w'>{_change(r, tz)}",
            )
        ),
    ]
    return "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells) + "</tr>"


def table_html(items: Sequence[Entry], now: datetime, tz: ZoneInfo, kiosk: bool = False) -> str:
    heads = KIOSK_HEADINGS if kiosk else HEADINGS
    head = "".join(
        f"<th class='iw-r'>{h}</th>" if h in ("24 h", "30 d", "p50") else f"<th>{h}</th>"
        for h in heads
    )
    body = "".join(_row(e, now, tz, kiosk) for e in items)
    return f"<table class='iw-t'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kiosk_html(items: Sequence[Entry], now: datetime, tz: ZoneInfo) -> str:
    """The wall: up to KIOSK_COLUMNS side-by-side tables of KIOSK_ROWS rows, column by
    column (the failing ones top left)."""
    columns = max(1, min(KIOSK_COLUMNS, -(-len(items) // KIOSK_ROWS)))
    per = -(-len(items) // columns) if items else 0
    chunks = [items[i : i + per] for i in range(0, len(items), per)] if per else [items]
    tables = "".join(f"<div>{table_html(c, now, tz, kiosk=True)}</div>" for c in chunks)
    return f"<div class='iw-k' style='grid-template-columns:repeat({columns},1fr)'>{tables}</div>"


def heading(title: str, items: Sequence[Entry]) -> str:
    """A group's heading: its name, its size and its targets per state."""
    tally = " ".join(f"{pill(s, _pill_class(s))}&nbsp;{n}" for s, n in counts(items).items())
    n = len(items)
    return f"<h4>{escape(title)} · {n} target{'s' if n != 1 else ''} {tally}</h4>"


def _pill_class(group: str) -> str:
    if group == PENDING:
        return "transient"
    return NO_DATA if group == NO_DATA_WORDS else group


def summary_html(items: Sequence[Entry]) -> str:
    return " ".join(f"{pill(s, _pill_class(s))}&nbsp;{n}" for s, n in counts(items).items())


def wall_html(
    items: Sequence[Entry],
    by: str,
    now: datetime,
    tz: ZoneInfo,
    kiosk: bool = False,
    tags: Sequence[str] = (),
) -> str:
    """The whole list as one piece of HTML: one table, or one per group under its heading."""
    parts = []
    for title, group in grouped(items, by, tags):
        if title:
            parts.append(heading(title, group))
        parts.append(kiosk_html(group, now, tz) if kiosk else table_html(group, now, tz))
    return "".join(parts)


def page_html(*parts: str, kiosk: bool = False) -> str:
    """Wrap the parts with the shared style, as one element."""
    return f"{CSS}<div class='iw{' iw-kiosk' if kiosk else ''}'>{''.join(parts)}</div>"
