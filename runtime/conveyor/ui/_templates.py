# ruff: noqa: E501  (HTML and CSS lines read better whole than wrapped at 120)
"""The HTML templates (jinja2, autoescaped: every foreign id, object and reason is escaped on output). Kept in
Python rather than package-data files so an installed wheel always has them, and self-contained (inline CSS,
no scripts, nothing fetched from elsewhere) so the UI works offline and under a strict CSP."""

from __future__ import annotations

BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}conveyor{% endblock %} · conveyor</title>
<style>
:root { --fg:#1d232b; --muted:#5d6b7a; --line:#d9dfe6; --bg:#f6f8fa; --accent:#2f6fdf; --bad:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color:var(--fg); }
header { background:#1d232b; color:#fff; padding:10px 24px; display:flex; gap:24px; align-items:baseline; }
header a { color:#fff; text-decoration:none; } header .brand { font-weight:700; font-size:16px; }
main { padding:18px 24px; max-width:1400px; }
h1 { font-size:20px; margin:0 0 14px; } h2 { font-size:16px; margin:22px 0 8px; }
table { border-collapse:collapse; width:100%; background:#fff; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--bg); font-weight:600; white-space:nowrap; }
td.mono, .mono { font-family:ui-monospace, "DejaVu Sans Mono", monospace; font-size:12.5px; }
form.filters { display:flex; flex-wrap:wrap; gap:10px; align-items:flex-end; margin-bottom:14px; }
form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); gap:2px; }
input, select, button, textarea { font:inherit; padding:5px 8px; border:1px solid var(--line); border-radius:6px; }
button { background:var(--accent); color:#fff; border-color:var(--accent); cursor:pointer; }
button.danger { background:var(--bad); border-color:var(--bad); }
a { color:var(--accent); }
.state { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; background:#e8edf3; }
.state-RUNNING, .state-INITIATED { background:#dcebff; } .state-COMPLETED { background:#dcf5e3; }
.state-PAUSED { background:#fff1c9; } .state-CANCELLED, .state-DATA_DELETED, .state-REQUESTED_DATA_DELETED { background:#f6dede; }
.pager { display:flex; gap:16px; margin:12px 0; align-items:center; color:var(--muted); }
.error { border:1px solid var(--bad); color:var(--bad); background:#fdf0ef; padding:10px 14px; border-radius:6px; }
.notice { color:var(--muted); }
dl.fields { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; }
dl.fields dt { color:var(--muted); } dl.fields dd { margin:0; }
pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px; overflow:auto; max-height:420px; }
.actions { display:flex; gap:10px; flex-wrap:wrap; align-items:flex-end; }
.actions form { margin:0; }
svg.graph { background:#fff; border:1px solid var(--line); border-radius:6px; max-width:100%; height:auto; }
svg.graph .node rect { fill:#fff; stroke:#6b7b8c; stroke-width:1.4; }
svg.graph .node.start rect { stroke:var(--accent); }
svg.graph .node.terminal rect { stroke-width:3; stroke:#3a8f55; }
svg.graph .node.current rect { fill:#ffe69a; stroke:#a07800; stroke-width:2.5; }
svg.graph text { font:12px "DejaVu Sans", sans-serif; fill:var(--fg); }
svg.graph .edge { fill:none; stroke:#7d8a98; stroke-width:1.4; }
svg.graph .edge-callback { stroke-dasharray:5 3; } svg.graph .edge-timeout { stroke-dasharray:2 3; }
svg.graph marker path { fill:#7d8a98; }
svg.graph .node.visited rect { stroke:var(--accent); stroke-width:2.5; }
svg.graph .edge.taken { stroke:var(--accent); stroke-width:2.8; } svg.graph marker#arrow-taken path { fill:var(--accent); }
svg.graph .node.heat-1 rect { fill:#e3eefc; } svg.graph .node.heat-2 rect { fill:#c3d9f8; }
svg.graph .node.heat-3 rect { fill:#97bdf2; } svg.graph .node.heat-4 rect { fill:#6a9fe9; }
svg.graph .node.late rect { fill:#f7c9c4; stroke:var(--bad); stroke-width:2.5; }
td.late { background:#fdf0ef; color:var(--bad); font-weight:600; }
td.count a { font-weight:600; } .age { display:block; font-size:12px; color:var(--muted); } td.late .age { color:var(--bad); }
ol.path { display:flex; flex-wrap:wrap; gap:4px 22px; padding-left:18px; margin:8px 0; }
</style>
</head>
<body>
<header><a class="brand" href="/">conveyor</a><a href="/">Runs</a><a href="/workflows">Workflows</a>
<a href="/api/runs">API</a><a href="/metrics">Metrics</a></header>
<main>{% block main %}{% endblock %}</main>
</body>
</html>
"""

RUNS = """{% extends "base.html" %}
{% block title %}Runs{% endblock %}
{% block main %}
<h1>Runs</h1>
<form class="filters" method="get" action="/" id="filters">
  <label>Workflow
    <input name="workflow" list="workflow-names" value="{{ query.workflow or '' }}" size="22" placeholder="any">
  </label>
  <datalist id="workflow-names">{% for name in workflows %}<option value="{{ name }}">{% endfor %}</datalist>
  <label>Status <input name="status" value="{{ status_text }}" size="14" placeholder="name or number"></label>
  <label>Run state
    <select name="run_state">
      <option value="">any</option>
      {% if query.run_states | length > 1 %}
      <option value="{{ query.run_states | map(attribute='name') | join(',') }}" selected>{{ query.run_states | map(attribute='label') | join(', ') }}</option>
      {% endif %}
      {% for state in run_states %}
      <option value="{{ state.name }}"{% if query.run_states | length == 1 and state in query.run_states %} selected{% endif %}>{{ state.label }}</option>
      {% endfor %}
    </select>
  </label>
  <label>Foreign id {% for foreign_id in query.foreign_ids or [''] %}<input name="foreign_id" value="{{ foreign_id }}" size="22">{% endfor %}</label>
  <label>Per page <input name="limit" type="number" min="1" max="{{ max_limit }}" value="{{ query.limit }}" size="4"></label>
  <label>Order
    <select name="order">
      <option value="desc"{% if not ascending %} selected{% endif %}>newest first</option>
      <option value="asc"{% if ascending %} selected{% endif %}>oldest first</option>
    </select>
  </label>
  <button type="submit">Filter</button>
  <a href="/">Clear</a>
</form>
<table id="runs">
<thead><tr><th>Foreign id</th><th>Workflow</th><th>Status</th><th>Run state</th><th>Created</th><th>Updated</th><th>Run id</th></tr></thead>
<tbody>
{% for run in runs %}
<tr data-run-id="{{ run.run_id }}">
  <td><a href="/runs/{{ run.run_id | path_segment }}">{{ run.foreign_id }}</a></td>
  <td>{% if run.workflow_name in workflows %}<a href="/workflows/{{ run.workflow_name | path_segment }}">{{ run.workflow_name }}</a>{% else %}{{ run.workflow_name }}{% endif %}</td>
  <td>{{ run.status_name or run.status }}</td>
  <td><span class="state state-{{ run.run_state }}">{{ run.run_state | state_label }}</span></td>
  <td class="mono" title="{{ run.created_at }}">{{ run.created_at | when }}</td>
  <td class="mono" title="{{ run.updated_at }}">{{ run.updated_at | when }}</td>
  <td class="mono">{{ run.run_id }}</td>
</tr>
{% else %}
<tr><td colspan="7" class="notice">No runs match.</td></tr>
{% endfor %}
</tbody>
</table>
<nav class="pager">
  {% if query.cursor or query.before %}<a id="first-page" href="{{ first_href }}">« First page</a>{% endif %}
  {% if prev_href %}<a id="prev-page" href="{{ prev_href }}">&lsaquo; Previous page</a>{% endif %}
  <span>{{ runs | length }} run{{ '' if runs | length == 1 else 's' }} on this page</span>
  {% if next_href %}<a id="next-page" href="{{ next_href }}">Next page »</a>{% endif %}
</nav>
{% endblock %}
"""

RUN = """{% extends "base.html" %}
{% block title %}{{ run.foreign_id }}{% endblock %}
{% block main %}
<h1>{% if graph %}<a href="/workflows/{{ run.workflow_name | path_segment }}">{{ run.workflow_name }}</a>{% else %}{{ run.workflow_name }}{% endif %} · {{ run.foreign_id }}</h1>
<dl class="fields" id="run">
  <dt>Run id</dt><dd class="mono">{{ run.run_id }}</dd>
  <dt>Foreign id</dt><dd>{{ run.foreign_id }}</dd>
  <dt>Status</dt><dd id="status">{{ run.status_name or run.status }}{% if run.status_name %} ({{ run.status }}){% endif %}</dd>
  <dt>Run state</dt><dd><span id="run-state" class="state state-{{ run.run_state }}">{{ run.run_state | state_label }}</span></dd>
  {% if run.run_state_reason %}<dt>Reason</dt><dd id="reason">{{ run.run_state_reason }}</dd>{% endif %}
  <dt>Created</dt><dd class="mono" title="{{ run.created_at }}">{{ run.created_at | when }}</dd>
  <dt>Updated</dt><dd class="mono" title="{{ run.updated_at }}">{{ run.updated_at | when }}</dd>
  <dt>Version</dt><dd>{{ run.version }}</dd>
  {% if run.forked_from %}<dt>Forked from</dt><dd id="forked-from"><a href="/runs/{{ run.forked_from.run_id | path_segment }}">{{ run.forked_from.run_id }}</a> at {{ run.forked_from.status_name or run.forked_from.status }}</dd>{% endif %}
</dl>
{% if allow_actions %}
<h2>Actions</h2>
{% if actions %}
<div class="actions">
{% for action in actions if action != 'fork' %}
  <form method="post" action="/runs/{{ run.run_id | path_segment }}/{{ action }}">
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    <input name="reason" placeholder="reason (optional)" size="18" aria-label="reason for {{ action }}">
    <button type="submit" id="action-{{ action }}"{% if action in ('cancel', 'delete') %} class="danger"{% endif %}>{{ action | capitalize }}</button>
  </form>
{% endfor %}
{% if 'fork' in actions %}
  <form method="post" action="/runs/{{ run.run_id | path_segment }}/fork" class="fork">
    <input type="hidden" name="csrf_token" value="{{ csrf_token }}">
    <label>from <select name="status" aria-label="status to fork at">
    {% for value, name in fork_statuses %}<option value="{{ value }}"{% if value == run.status %} selected{% endif %}>{{ name }}</option>{% endfor %}
    </select></label>
    <textarea name="object" rows="1" cols="24" placeholder="object as JSON (optional)" aria-label="object for the new run"></textarea>
    <button type="submit" id="action-fork">Fork</button>
  </form>
{% endif %}
</div>
{% else %}<p class="notice">No action applies to a run that is {{ run.run_state | state_label | lower }}.</p>{% endif %}
{% endif %}
<h2>Object</h2>
{% if object_text is none %}<p class="notice">The object's data was deleted.</p>
{% else %}<pre id="object">{{ object_text }}</pre>{% endif %}
<h2>Workflow graph</h2>
{% if graph %}{{ graph }}
<p class="notice">The run's path, from its history:</p>
<ol class="path" id="path">{% for step in path %}<li data-status="{{ step.status }}">{{ step.status_name or step.status }}</li>{% endfor %}</ol>
<details><summary>Mermaid</summary><pre>{{ mermaid }}</pre></details>
{% else %}<p class="notice">The UI was not given this workflow (conveyor ui --entrypoint module:builder), so its graph is unknown.</p>{% endif %}
<h2>History</h2>
<table id="history">
<thead><tr><th>Version</th><th>Status</th><th>Run state</th><th>Reason</th><th>Updated</th></tr></thead>
<tbody>
{% for h in history %}
<tr><td>{{ h.version }}</td><td>{{ h.status_name or h.status }}</td>
<td><span class="state state-{{ h.run_state }}">{{ h.run_state | state_label }}</span></td>
<td>{{ h.run_state_reason }}</td><td class="mono" title="{{ h.updated_at }}">{{ h.updated_at | when }}</td></tr>
{% endfor %}
</tbody>
</table>
{% endblock %}
"""

WORKFLOWS = """{% extends "base.html" %}
{% block title %}Workflows{% endblock %}
{% block main %}
<h1>Workflows</h1>
{% for wf in workflows %}
<section class="workflow" id="workflow-{{ wf.name }}">
<h2><a href="/workflows/{{ wf.name | path_segment }}">{{ wf.name }}</a> <small><a href="/?workflow={{ wf.name | urlencode }}">runs</a></small></h2>
{{ wf.graph }}
<details><summary>Mermaid</summary><pre>{{ wf.mermaid }}</pre></details>
</section>
{% else %}
<p class="notice">No workflow was given to the UI: start it with <code>conveyor ui --entrypoint module:builder</code>
to see status names and graphs. Runs of any workflow are listed either way.</p>
{% endfor %}
{% endblock %}
"""

WORKFLOW = """{% extends "base.html" %}
{% block title %}{{ wf.name }}{% endblock %}
{% block main %}
<h1>{{ wf.name }}</h1>
<p><a href="/?workflow={{ wf.name | urlencode }}">All runs</a> · {{ active }} active run{{ '' if active == 1 else 's' }}, counted at <span class="mono">{{ now | when }}</span></p>
{{ graph }}
<h2>Where runs wait</h2>
<table id="waiting">
<thead><tr><th>Status</th>{% for state in run_states %}<th>{{ state | state_label }}</th>{% endfor %}<th>Lag alert</th></tr></thead>
<tbody>
{% for row in statuses %}
<tr data-status="{{ row.status }}"{% if row.over_lag_alert %} class="late"{% endif %}>
  <td>{% if row.active %}<a href="/?workflow={{ wf.name | urlencode }}&amp;status={{ row.status }}">{{ row.status_name or row.status }}</a>{% else %}{{ row.status_name or row.status }}{% endif %}{% if not row.status_name %} <span class="notice">(not in the code)</span>{% endif %}</td>
  {% for cell in row.run_states %}
  <td class="count{% if cell.over_lag_alert %} late{% endif %}" data-run-state="{{ cell.run_state }}">{% if cell.count %}<a href="/?workflow={{ wf.name | urlencode }}&amp;status={{ row.status }}&amp;run_state={{ cell.run_state }}">{{ cell.count }}</a><span class="age" title="{{ cell.oldest }}">oldest {{ cell.age_seconds | age }}</span>{% else %}<span class="notice">0</span>{% endif %}</td>
  {% endfor %}
  <td>{% if row.lag_alert_seconds is none %}<span class="notice">none (no step)</span>{% else %}{{ row.lag_alert_seconds | age }}{% endif %}</td>
</tr>
{% endfor %}
</tbody>
</table>
<h2>Paused runs</h2>
{% if paused %}
<table id="paused">
<thead><tr><th>Foreign id</th><th>Status</th><th>Reason</th><th>Since</th></tr></thead>
<tbody>
{% for run in paused %}
<tr data-run-id="{{ run.run_id }}"><td><a href="/runs/{{ run.run_id | path_segment }}">{{ run.foreign_id }}</a></td>
<td>{{ run.status_name or run.status }}</td><td>{{ run.run_state_reason }}</td>
<td class="mono" title="{{ run.updated_at }}">{{ run.updated_at | when }}</td></tr>
{% endfor %}
</tbody>
</table>
<p class="notice">The {{ paused_limit }} newest at most: <a id="all-paused" href="/?workflow={{ wf.name | urlencode }}&amp;run_state=PAUSED">every paused run</a>.</p>
{% else %}<p class="notice" id="no-paused">No run of this workflow is paused.</p>{% endif %}
<details><summary>Mermaid</summary><pre>{{ wf.mermaid }}</pre></details>
{% endblock %}
"""

ERROR = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block main %}
<h1>{{ title }}</h1>
<p class="error" role="alert" id="error">{{ message }}</p>
<p><a href="/">Back to the runs</a></p>
{% endblock %}
"""

TEMPLATES = {
    "base.html": BASE,
    "runs.html": RUNS,
    "run.html": RUN,
    "workflows.html": WORKFLOWS,
    "workflow.html": WORKFLOW,
    "error.html": ERROR,
}
