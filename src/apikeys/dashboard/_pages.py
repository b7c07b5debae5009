"""The pages as HTML strings, from the plain data of :mod:`._queries`. Every
value from a store or a request goes through :func:`esc`; nothing here reads a
store or a request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

from apikeys._display import human_utc, readable, rotation, state_label
from apikeys._models import APIKey, KeyState
from apikeys.dashboard._http import url
from apikeys.dashboard._queries import PERIODS, KeyDetail, KeyList, Limits, Overview
from apikeys.dashboard._svg import CLASSES, bars, stacked_bars
from apikeys.monitoring._audit import AuditEntry
from apikeys.monitoring._review import ReviewFinding

STYLE = b"""
:root{font-family:system-ui,sans-serif;color:#1b1b1b;background:#fafafa;line-height:1.4}
body{margin:0}main{max-width:1100px;margin:0 auto;padding:1rem}
header{background:#1f2a44;padding:.5rem 1rem}header a{color:#fff;margin-right:1rem}
.skip{position:absolute;left:-999px}
.skip:focus{left:auto;right:1rem;top:.3rem;background:#fff;padding:.2rem .5rem}
a{color:#1a4f8b}a[aria-current]{font-weight:bold;text-decoration:none}
a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{
outline:3px solid #e8a317;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:1rem}.card{background:#fff;border:1px solid #ddd;
padding:.5rem 1rem;min-width:9rem}.card b{font-size:1.5rem;display:block}
.chart{width:100%;height:auto;background:#fff;border:1px solid #ddd}
.bars{width:100%;max-width:360px}
.axis{font-size:11px;fill:#555}.legend span{margin-right:1rem}.swatch{display:inline-block;
width:.8rem;height:.8rem;margin-right:.25rem;vertical-align:middle}
.sw-2xx{background:#2f7d4f}.sw-3xx{background:#3a6ea5}.sw-4xx{background:#c27c0e}
.sw-5xx{background:#b3261e}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));
gap:1rem}.state{padding:0 .4rem;border-radius:.2rem;background:#e4e4e4}
.state-active{background:#d5ecd9}.state-revoked{background:#f6d4d1}.state-disabled{background:#f7e6c4}
.up{color:#2f7d4f}.down{color:#b3261e}button{padding:.3rem .8rem;font:inherit;cursor:pointer}
button.danger{background:#b3261e;color:#fff;border:1px solid #7d1a15}
.secret{font-size:1.1rem;background:#fff3c4;padding:.5rem;display:block;word-break:break-all}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
form.filters label{display:flex;flex-direction:column;font-size:.9rem}
.notice{background:#e8f1fb;border:1px solid #a9c6e8;padding:.5rem 1rem}
.grid>section{min-width:0;overflow-x:auto}dl{display:grid;grid-template-columns:11rem 1fr;
gap:.2rem 1rem}dd{margin:0}
"""

FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<circle cx="5" cy="8" r="4" fill="#1f2a44"/><rect x="8" y="7" width="8" height="2" '
    b'fill="#1f2a44"/></svg>'
)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def esc(value: object) -> str:
    """``value`` as text safe in HTML content and quoted attributes."""
    return escape(str(value), quote=True)


def when(at: datetime | None) -> str:
    """A UTC instant as ``2026-01-31 12:00:00 UTC`` (``-`` for none)."""
    return human_utc(at)


def layout(root: str, title: str, body: str, *, current: str = "") -> str:
    """A whole page: navigation, skip link, the body in ``<main>``."""
    nav = "".join(
        f'<a href="{esc(root + path)}"{" aria-current=page" if name == current else ""}>{label}</a>'
        for name, path, label in (
            ("overview", "/", "Overview"),
            ("keys", "/keys", "Keys"),
            ("review", "/review", "Review"),
        )
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · API keys</title>"
        f'<link rel="stylesheet" href="{esc(root)}/style.css">'
        f'<link rel="icon" href="{esc(root)}/favicon.svg" type="image/svg+xml"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><nav aria-label="Dashboard">{nav}</nav></header>'
        f'<main id="main" tabindex="-1">{body}</main></body></html>'
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str = "None.") -> str:
    """A table; header names ending in ``#`` are numeric columns. Cells are HTML."""
    rows = list(rows)
    if not rows:
        return f"<p>{esc(empty)}</p>"
    head = "".join(
        f'<th scope="col" class="n">{esc(h[:-1])}</th>'
        if h.endswith("#")
        else f'<th scope="col">{esc(h)}</th>'
        for h in headers
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if h.endswith("#") else f"<td>{cell}</td>"
            for h, cell in zip(headers, row, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def state_badge(key: APIKey, now: datetime) -> str:
    """The key's state as a labelled badge."""
    state = key.state(now)
    return f'<span class="state state-{state.value}">{state_label(state)}</span>'


def key_link(root: str, key_id: str) -> str:
    """A link to one key's page."""
    return f'<a href="{esc(url(root, "/keys/" + key_id))}"><code>{esc(key_id)}</code></a>'


def periods(root: str, path: str, current: str, extra: dict[str, Any] | None = None) -> str:
    """Links to the same page over each period (the period is kept in the URL)."""
    links = "".join(
        f' <a href="{esc(url(root, path, {**(extra or {}), "period": name}))}"'
        f"{' aria-current=true' if name == current else ''}>{name}</a>"
        for name in PERIODS
    )
    return f'<nav aria-label="Period" class="periods">Period:{links}</nav>'


def legend() -> str:
    """The colours of the status classes."""
    return (
        '<p class="legend" aria-hidden="true">'
        + "".join(f'<span><i class="swatch sw-{c}"></i>{c}</span>' for c in CLASSES)
        + "</p>"
    )


def _change(total: int, previous: int) -> str:
    if previous == 0:
        return "no requests in the previous period" if total else "no change"
    ratio = (total - previous) / previous * 100
    arrow = "up" if ratio >= 0 else "down"
    return f'<span class="{arrow}">{ratio:+.0f}%</span> vs previous period ({previous})'


def _audit_rows(root: str, entries: Iterable[AuditEntry]) -> list[list[str]]:
    rows = []
    for entry in entries:
        details = ", ".join(
            f"{esc(k)}={esc(readable(v))}"
            for k, v in sorted(entry.data.items())
            if v not in (None, "", [], {})
        )
        rows.append(
            [
                esc(when(entry.at)),
                f"<code>{esc(entry.type)}</code>",
                key_link(root, entry.key_id) if entry.key_id else "-",
                details,
            ]
        )
    return rows


def _findings(root: str, findings: Sequence[ReviewFinding]) -> str:
    return table(
        ["Key", "Owner", "Name", "Issues"],
        (
            [
                key_link(root, f.key.id),
                esc(f.key.owner),
                esc(f.key.name or ""),
                "; ".join(esc(n) for n in f.notes.values()),
            ]
            for f in findings
        ),
        empty="Nothing to review.",
    )


def _expiring(root: str, keys: Sequence[APIKey]) -> str:
    return table(
        ["Key", "Owner", "Name", "Expires"],
        (
            [key_link(root, k.id), esc(k.owner), esc(k.name or ""), esc(when(k.expires_at))]
            for k in keys
        ),
        empty="No key expires in the next 14 days.",
    )


def _limits(root: str, limits: Sequence[Limits]) -> str:
    return table(
        ["Key", "Limit", "Used#", "Of#", "Share#"],
        (
            [
                key_link(root, x.key.id),
                esc(x.policy),
                str(x.used),
                str(x.limit),
                f"{x.fraction:.0%}",
            ]
            for x in limits
        ),
        empty="No key is near a limit.",
    )


def overview(root: str, view: Overview, now: datetime) -> str:
    """The overview page."""
    parts = [f"<h1>Overview: last {esc(view.period)}</h1>", periods(root, "/", view.period)]
    if not view.summaries:
        parts.append(
            '<p class="notice">This usage store cannot sum across keys: request totals, '
            "top keys and routes are shown per key only.</p>"
        )
    failures = sum(n for _, n in view.failure_codes)
    cards = [
        ("Requests", str(view.total), _change(view.total, view.previous)),
        ("Successful (2xx)", str(view.by_class.get("2xx", 0)), ""),
        ("Client errors (4xx)", str(view.by_class.get("4xx", 0)), ""),
        ("Server errors (5xx)", str(view.by_class.get("5xx", 0)), ""),
        ("Refused credentials", ("≥" if view.failures_capped else "") + str(failures), ""),
    ]
    parts.append(
        '<section class="cards" aria-label="Totals">'
        + "".join(f'<div class="card">{esc(t)}<b>{v}</b>{extra}</div>' for t, v, extra in cards)
        + "</section>"
    )
    parts.append("<h2>Requests over time</h2>")
    parts.append(stacked_bars(view.buckets, label="Requests per bucket by status class"))
    parts.append(legend())
    parts.append('<div class="grid"><section><h2>Failures by code</h2>')
    parts.append(
        table(
            ["Code", "Failures#"],
            ([f"<code>{esc(c)}</code>", str(n)] for c, n in view.failure_codes),
            empty="No failures.",
        )
    )
    parts.append("</section><section><h2>Top keys</h2>")
    parts.append(bars([(k, n) for k, n, _ in view.top_keys], label="Requests of the top keys"))
    parts.append(
        table(
            ["Key", "Owner", "Name", "Requests#"],
            (
                [
                    key_link(root, k),
                    esc(key.owner if key else "(purged)"),
                    esc(key.name or "" if key else ""),
                    str(n),
                ]
                for k, n, key in view.top_keys
            ),
            empty="No requests.",
        )
    )
    parts.append("</section><section><h2>Top routes</h2>")
    parts.append(
        table(
            ["Route", "Requests#"],
            ([f"<code>{esc(r)}</code>", str(n)] for r, n in view.top_routes),
            empty="No requests.",
        )
    )
    parts.append("</section><section><h2>Near a limit</h2>")
    parts.append(_limits(root, view.near_limits))
    parts.append("</section></div><h2>Recent anomalies</h2>")
    parts.append(
        table(
            ["At", "Event", "Key", "Details"],
            _audit_rows(root, view.anomalies),
            empty="No anomalies.",
        )
    )
    parts.append("<h2>Expiring within 14 days</h2>")
    parts.append(_expiring(root, view.expiring))
    parts.append("<h2>Hygiene review</h2>")
    parts.append(_findings(root, view.findings))
    if view.review_next:
        parts.append(
            f'<p><a href="{esc(url(root, "/review", {"after": view.review_next}))}">'
            "Review more keys</a></p>"
        )
    return layout(root, "Overview", "".join(parts), current="overview")


def review(
    root: str, findings: Sequence[ReviewFinding], expiring: Sequence[APIKey], following: str | None
) -> str:
    """One page of the hygiene review."""
    parts = [
        "<h1>Hygiene review</h1>",
        "<h2>Expiring within 14 days</h2>",
        _expiring(root, expiring),
    ]
    parts += ["<h2>Keys that need a look</h2>", _findings(root, findings)]
    if following:
        parts.append(
            f'<p><a href="{esc(url(root, "/review", {"after": following}))}">Next keys</a></p>'
        )
    return layout(root, "Review", "".join(parts), current="review")


def keys(root: str, page: KeyList, filters: dict[str, str], now: datetime) -> str:
    """The keys list with its filter form (a GET form: filters stay in the URL)."""
    states = "".join(
        f'<option value="{s}"{" selected" if filters.get("state") == s else ""}>{label}</option>'
        for s, label in [("", "any"), *((state.value, state_label(state)) for state in KeyState)]
    )
    form = (
        f'<form class="filters" method="get" action="{esc(root)}/keys" role="search">'
        f'<label>Owner<input name="owner" value="{esc(filters.get("owner", ""))}"></label>'
        f'<label>State<select name="state">{states}</select></label>'
        f'<label>Prefix<input name="prefix" value="{esc(filters.get("prefix", ""))}"></label>'
        f'<label>Id or name<input name="q" value="{esc(filters.get("q", ""))}"></label>'
        "<button type=submit>Filter</button></form>"
    )
    rows = (
        [
            key_link(root, k.id),
            esc(k.name or ""),
            esc(k.owner),
            state_badge(k, now),
            esc(when(k.created_at)),
            esc(when(k.expires_at)),
            esc(when(k.last_used_at)),
        ]
        for k in page.keys
    )
    parts = [
        "<h1>Keys</h1>",
        form,
        table(
            ["Key", "Name", "Owner", "State", "Created", "Expires", "Last used"],
            rows,
            empty="No key matches.",
        ),
    ]
    if page.next_after:
        parts.append(
            f'<p><a href="{esc(url(root, "/keys", {**filters, "after": page.next_after}))}">'
            "Next page</a></p>"
        )
    return layout(root, "Keys", "".join(parts), current="keys")


ACTIONS = {
    "revoke": ("Revoke", "The key stops working at once, for good."),
    "rotate": ("Rotate", "A successor with the same settings is issued; its key is shown once."),
    "suspend": ("Suspend", "The key stops working until it is enabled again."),
    "enable": ("Enable", "The key works again."),
}


def allowed_actions(key: APIKey, now: datetime) -> list[str]:
    """The actions that make sense for the key's state now."""
    state = key.state(now)
    if state is KeyState.REVOKED:
        return []
    found = ["revoke"]
    if state is KeyState.ACTIVE and key.replaced_by is None:
        found.insert(0, "rotate")
        found.append("suspend")
    if state is KeyState.DISABLED:
        found.append("enable")
    return found


def key_page(root: str, detail: KeyDetail, now: datetime, done: str | None) -> str:
    """The page of one key."""
    k = detail.key
    settings = [
        ("State", state_badge(k, now)),
        ("Prefix", f"<code>{esc(k.prefix)}</code>"),
        ("Owner", esc(k.owner)),
        ("Name", esc(k.name or "-")),
        ("Scopes", esc(", ".join(k.scopes) or "-")),
        ("Created", esc(when(k.created_at))),
        ("Expires", esc(when(k.expires_at))),
        ("Rotation", esc(rotation(k))),
        ("Revoked", esc(f"{when(k.revoked_at)} ({k.revoke_reason})" if k.revoked_at else "-")),
        (
            "Suspended",
            esc(f"{when(k.disabled_at)} ({k.disabled_reason})" if k.disabled_at else "-"),
        ),
        (
            "Last used",
            esc(
                f"{when(k.last_used_at)} from {k.last_used_ip or '?'}"
                if k.last_used_at
                else "never"
            ),
        ),
        ("Allowed addresses", esc(", ".join(k.allowed_ips) or "any")),
        ("Rate limits", esc(", ".join(k.rate_limits) or "default")),
        ("Quota", esc(k.quota or "-")),
        ("Metadata", esc(", ".join(f"{a}={b}" for a, b in sorted(k.metadata.items())) or "-")),
    ]
    parts = [f"<h1>Key <code>{esc(k.id)}</code>{' · ' + esc(k.name) if k.name else ''}</h1>"]
    if done:
        parts.append(f'<p class="notice" role="status">{esc(done)}</p>')
    actions = "".join(
        f'<a href="{esc(url(root, f"/keys/{k.id}/{a}"))}">{ACTIONS[a][0]}…</a> '
        for a in allowed_actions(k, now)
    )
    parts.append(f'<p aria-label="Actions">{actions}</p>' if actions else "")
    parts.append("<dl>" + "".join(f"<dt>{esc(n)}</dt><dd>{v}</dd>" for n, v in settings) + "</dl>")
    parts.append("<h2>Lineage</h2><ol>")
    for item in detail.lineage:
        mark = " (this key)" if item.id == k.id else ""
        parts.append(
            f"<li>{key_link(root, item.id)} {state_badge(item, now)} "
            f"created {esc(when(item.created_at))}{mark}</li>"
        )
    parts.append("</ol>")
    parts.append(f"<h2>Usage: last {esc(detail.period)}</h2>")
    parts.append(periods(root, f"/keys/{k.id}", detail.period))
    parts.append(f"<p>{detail.total} requests.</p>")
    parts.append(stacked_bars(detail.buckets, label=f"Requests of key {k.id} by status class"))
    parts.append(legend())
    parts.append('<div class="grid"><section><h2>Routes and statuses</h2>')
    parts.append(
        table(
            ["Method", "Route", "Status#", "Requests#"],
            ([esc(m), f"<code>{esc(r)}</code>", str(s), str(n)] for (m, r, s), n in detail.routes),
            empty="No requests.",
        )
    )
    parts.append("</section><section><h2>Client addresses</h2>")
    parts.append(
        table(
            ["Address", "Requests#", "First seen", "Last seen"],
            (
                [esc(a.ip), str(a.count), esc(when(a.first_seen)), esc(when(a.last_seen))]
                for a in detail.addresses
            ),
            empty="No addresses.",
        )
    )
    parts.append("</section><section><h2>Limits</h2>")
    parts.append(
        table(
            ["Limit", "Used#", "Of#"],
            ([esc(x.policy), str(x.used), str(x.limit)] for x in detail.limits),
            empty="No limiter can tell.",
        )
    )
    parts.append("</section></div><h2>Audit trail</h2>")
    parts.append(
        table(
            ["At", "Event", "Key", "Details"], _audit_rows(root, detail.audit), empty="No entries."
        )
    )
    if detail.audit_next is not None:
        more = url(root, f"/keys/{k.id}", {"period": detail.period, "before": detail.audit_next})
        parts.append(f'<p><a href="{esc(more)}">Older entries</a></p>')
    return layout(root, f"Key {k.id}", "".join(parts), current="keys")


def confirm(root: str, key: APIKey, action: str, csrf: str) -> str:
    """The confirmation form of an action (POST, with the CSRF token)."""
    title, effect = ACTIONS[action]
    extra = ""
    if action in ("revoke", "suspend"):
        extra = '<p><label>Reason <input name="reason" maxlength="200"></label></p>'
    if action == "rotate":
        extra = (
            '<p><label>Old key keeps working for <select name="grace">'
            '<option value="0">no time</option><option value="3600">1 hour</option>'
            '<option value="86400">24 hours</option></select></label></p>'
        )
    danger = ' class="danger"' if action in ("revoke", "suspend") else ""
    body = (
        f"<h1>{title} key <code>{esc(key.id)}</code>?</h1>"
        f"<p>Owner {esc(key.owner)}{', name ' + esc(key.name) if key.name else ''}. "
        f"{esc(effect)}</p>"
        f'<form method="post" action="{esc(url(root, f"/keys/{key.id}/{action}"))}">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">{extra}'
        f"<button type=submit{danger}>{title} this key</button> "
        f'<a href="{esc(url(root, "/keys/" + key.id))}">Cancel</a></form>'
    )
    return layout(root, f"{title} {key.id}", body, current="keys")


def rotated(root: str, old_id: str, new: APIKey, plaintext: str) -> str:
    """The one page that shows a new key's plaintext."""
    body = (
        f"<h1>Key <code>{esc(old_id)}</code> rotated</h1>"
        '<p role="alert">Copy the new key now: it is shown only once and cannot be '
        "recovered.</p>"
        f'<p><code class="secret" id="new-key">{esc(plaintext)}</code></p>'
        f"<p>New key: {key_link(root, new.id)}</p>"
    )
    return layout(root, "Key rotated", body, current="keys")


def problem(root: str, status: int, message: str) -> str:
    """An error page (the message is fixed text chosen by the dashboard)."""
    return layout(root, "Error", f"<h1>{status}</h1><p>{esc(message)}</p>")
