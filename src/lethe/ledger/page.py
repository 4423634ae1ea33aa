"""The certificate as a page a person can read (HTML, beside the JSON), rendered with Jinja2."""

from __future__ import annotations

from typing import Any

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Erasure certificate {{ c.request_id }}</title>
<style>body{font-family:sans-serif;max-width:52em;margin:2em auto}td,th{padding:.2em .8em;text-align:left}
</style></head><body>
<h1>Erasure certificate</h1>
<p>Request <code>{{ c.request_id }}</code>, received {{ c.received_at }}, deadline {{ c.deadline }}.
{% if c.controller %}Controller: <strong>{{ c.controller }}</strong>.{% endif %}</p>
<p>State: <strong>{{ c.state or "fulfilled" }}</strong>, honoured by model version {{ c.model_version }}
{% if c.model_name %}of {{ c.model_name }}{% endif %} on {{ c.fulfilled_at }}
({{ "within" if c.within_deadline else "after" }} the deadline).</p>
{% if c.outcome_in_words %}<p>{{ c.outcome_in_words }}</p>{% endif %}
<h2>Parent and new version</h2>
<table><tr><th>metric</th><th>parent</th><th>new version</th></tr>
{% for key, value in c.metrics.items() %}<tr><td>{{ key }}</td>
<td>{{ (c.parent_metrics or {}).get(key, "-") }}</td><td>{{ value }}</td></tr>{% endfor %}</table>
{% if c.scope %}<h2>Scope</h2><p>Erased: {{ c.scope.erased }}.</p>
{% if c.scope.retired %}<p>Other copies retired:</p><ul>{% for copy in c.scope.retired %}
<li>{{ copy.kind }} {{ copy.name }}: retired {{ copy.retired_at or "" }}</li>{% endfor %}</ul>{% endif %}
{% if c.scope.retire_by %}<p>Other copies lethe keeps are retired by {{ c.scope.retire_by }}.</p>{% endif %}
{% if c.scope.not_managed %}<p>lethe does not manage, and the controller must erase elsewhere:</p><ul>
{% for item in c.scope.not_managed %}<li>{{ item }}</li>{% endfor %}</ul>{% endif %}{% endif %}
{% if c.recipients %}<h2>Recipients notified (GDPR Art. 19)</h2><ul>
{% for r in c.recipients %}<li>{{ r }}</li>{% endfor %}</ul>{% endif %}
<p>{% if c.signature %}Signed ({{ c.signature.algorithm }}, key {{ c.signature.key_id }}): check with
<code>lethe request verify {{ c.request_id }}.json --public-key KEY</code>.{% else %}Not signed.{% endif %}
The JSON file beside this page is the certificate; this page only presents it.</p>
</body></html>
"""


def render_page(fields: dict[str, Any]) -> str:
    from jinja2 import Environment

    environment = Environment(autoescape=True)
    return environment.from_string(TEMPLATE).render(c=fields)
