"""`statuspage`: the provider's own word, from an Atlassian-Statuspage-style summary.json.

`GET {url}` of `/api/v2/summary.json` (OpenAI's and Anthropic's pages serve it):
`status.indicator` `none` is ok; `minor`/`major`/`critical` is `provider_incident` (transient),
with the open incidents' names as detail and the first one's shortlink as hint; maintenance the
page announces (indicator `maintenance`, a scheduled maintenance in progress, a component
under maintenance) is a warning on an ok probe. A page that moves (a redirect, a 404, HTML
instead of JSON) is `bad_response` with a hint saying the source moved: never an outage, which
only the provider's own words may claim. Status pages lag reality, so they are evidence next to
the model probes (a model target names its page with `status_page:`), not a replacement.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from monitor.domain.evidence import Evidence, Outcome, RequestSpec, Verdict
from monitor.domain.text import one_line
from monitor.targets.base import TargetBase, Url, bad_response

INCIDENT_INDICATORS = ("minor", "major", "critical")
CALM_INDICATORS = ("none", "maintenance")
MOVED_HINT = (
    "the status page moved or changed its format (not an outage): point url at the "
    "provider's current Statuspage /api/v2/summary.json"
)
_OVER = frozenset({"resolved", "postmortem", "completed"})


class StatuspageTarget(TargetBase):
    kind: Literal["statuspage"]
    url: Url = Field(description="the page's /api/v2/summary.json")
    default_interval: ClassVar[float | None] = 120.0
    not_json_hint: ClassVar[str] = MOVED_HINT

    @property
    def endpoint(self) -> str:
        return self.url

    def build_request(self, token: str | None) -> RequestSpec:
        # Not followed: a redirect is the page moving, which the probe must say.
        return RequestSpec(
            method="GET",
            url=self.url,
            headers=self.request_headers(token),
            follow_redirects=False,
        )

    def judge_error(self, ev: Evidence) -> Verdict | None:
        status = ev.status or 0
        if 300 <= status < 400 or status in (404, 410):
            location = ev.headers.get("location")
            to = f" to {location}" if location and 300 <= status < 400 else ""
            return bad_response(f"HTTP {status}{to}: the status page is not here", MOVED_HINT)
        return None

    def judge_body(self, ev: Evidence) -> Verdict | None:
        data = ev.json
        status = _status_of(data)
        indicator = status.get("indicator")
        if indicator in CALM_INDICATORS:
            return None
        if indicator not in INCIDENT_INDICATORS:
            return bad_response(
                f"not a Statuspage summary (status.indicator is {indicator!r})", MOVED_HINT
            )
        incidents = _open(data.get("incidents"))
        names = [one_line(str(i.get("name") or "unnamed incident"), limit=None) for i in incidents]
        if names:
            detail = f"{indicator}: " + "; ".join(names)
        else:  # components degraded without a declared incident
            said = status.get("description") or f"indicator {indicator}"
            broken = [
                f"{c.get('name')} ({c.get('status')})"
                for c in _dicts(data.get("components"))
                if c.get("status") not in ("operational", "under_maintenance")
            ]
            detail = f"{indicator}: {said}" + (f" — {', '.join(broken)}" if broken else "")
        link = next((i["shortlink"] for i in incidents if _is_url(i.get("shortlink"))), None)
        page = _page_url(data)
        where = link or page
        hint = (
            f"the provider reports this at {where}; your model probes show whether it reaches you"
            if where
            else "the provider reports an incident; your model probes show whether it reaches you"
        )
        facts: dict[str, Any] = {"indicator": indicator, "incidents": names}
        if link:
            facts["incident_url"] = link
        return Verdict(Outcome.PROVIDER_INCIDENT, detail=detail, hint=hint, facts=facts)

    def ok_notes(self, ev: Evidence) -> tuple[str, dict[str, Any]]:
        data = ev.json
        if not isinstance(data, dict):
            return "", {}
        works = [
            str(m.get("name") or "maintenance")
            for m in _dicts(data.get("scheduled_maintenances"))
            if m.get("status") in ("in_progress", "verifying")
        ]
        parts = [
            str(c.get("name"))
            for c in _dicts(data.get("components"))
            if c.get("status") == "under_maintenance"
        ]
        status = _status_of(data)
        announced = status.get("indicator") == "maintenance"
        if not (works or parts or announced):
            return "", {}
        if works:
            what = "; ".join(works)
        elif parts:
            what = ", ".join(parts) + " under maintenance"
        else:
            what = str(status.get("description") or "scheduled work")
        note = f"the provider announces maintenance: {one_line(what, limit=None)}"
        return note, {"maintenance": works or parts}

    def config_errors(self) -> list[tuple[str, str]]:
        errors = super().config_errors()
        if self.status_page is not None:
            errors.append(("status_page", "a statuspage target is itself the status page"))
        return errors


def _status_of(data: Any) -> dict[str, Any]:
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _open(incidents: Any) -> list[dict[str, Any]]:
    """The incidents not yet over (summary.json lists only those, but be sure)."""
    return [i for i in _dicts(incidents) if i.get("status") not in _OVER]


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _page_url(data: dict[str, Any]) -> str | None:
    page = data.get("page")
    url = page.get("url") if isinstance(page, dict) else None
    return url if _is_url(url) else None
