"""The job dashboard's HTML: whole pages and the fragments the pages refresh themselves with.

Everything rendered comes from outside (object keys, errors, span names and
attributes) and goes through ``html.escape``; bars are SVG attributes and
``<progress>`` elements, so the pages need no inline styles and the content
security policy allows nothing but this page's own script and stylesheet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from shared import endpoint_capacity, tracing
from shared.job_groups import TransformGroup, grouped
from shared.schemas import JobItem, JobState

MAX_TIMELINE_SPANS = 2000
MAX_CHUNK_ROWS = 1000

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1b1f24; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e3e6ea;
         vertical-align: top; }
th { background: #f4f6f8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; padding: 0 .35rem; border-radius: .25rem; }
.state-SUCCEEDED { background: #d8f5dd; color: #135c22; }
.state-FAILED, .state-Failed { background: #fde0e0; color: #8a1414; }
.state-CANCELLED, .state-Stopped, .state-Stopping { background: #f3e3f7; color: #6a1b7a; }
.state-Completed { background: #d8f5dd; color: #135c22; }
.state-InProgress { background: #dde9fd; color: #123f8a; }
tr.transform td { background: #fafbfc; border-top: 2px solid #e3e6ea; }
tr.transform-object td:first-child { padding-left: 1.6rem; }
.state-RUNNING, .state-SUBMITTED { background: #dde9fd; color: #123f8a; }
.state-ACCEPTED { background: #f2f2f2; color: #444; }
.state-WAITING_FOR_ENDPOINT { background: #fff4d6; color: #6b4a00; }
.error { color: #8a1414; white-space: pre-wrap; word-break: break-word; }
progress { width: 9rem; vertical-align: middle; }
.muted { color: #67707a; }
.timeline td { padding: .1rem .5rem; white-space: nowrap; }
.timeline td.bar-cell { width: 55%; }
.timeline svg { width: 100%; height: 12px; display: block; }
.bar rect { fill: #4c7fd9; } .bar-error rect { fill: #d94c4c; }
.bar-done rect { fill: #2e9e4f; }
.indent-0 { padding-left: .5rem; }
pre { background: #f4f6f8; padding: .6rem; overflow: auto; max-height: 20rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
"""

# Refresh by fetching the page's fragment and swapping it in: the fragment is
# rendered (and escaped) by the server, like the page itself. Every
# ``data-refresh-ms`` while the page is live, every 5 s once it has settled.
REFRESH_SCRIPT = """
(function () {
  const target = document.getElementById("live");
  const source = target.dataset.fragment;
  const every = Number(target.dataset.refreshMs);
  async function refresh() {
    try {
      const response = await fetch(source, {cache: "no-store"});
      if (response.ok) {
        target.innerHTML = await response.text();
      }
    } catch (error) {
      /* the stack may be restarting; try again on the next tick */
    }
    const settled = target.querySelector("[data-settled='true']");
    setTimeout(refresh, settled ? 5000 : every);
  }
  setTimeout(refresh, every);
})();
"""
# A job's page reads one item and its spans: it follows the job twice a second.
JOB_REFRESH_MS = 500


def page(
    title: str, body: str, *, fragment_url: str, nonce: str, refresh_ms: int = JOB_REFRESH_MS
) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style nonce="{nonce}">{STYLE}</style>
</head>
<body>
<nav><a href="/">byom jobs</a></nav>
<div id="live" data-fragment="{escape(fragment_url)}" data-refresh-ms="{refresh_ms}">{body}</div>
<script nonce="{nonce}">{REFRESH_SCRIPT}</script>
</body>
</html>
"""


def _state(job: JobItem) -> str:
    state = job.state.value
    return f'<span class="state state-{state}" data-state="{state}">{state}</span>'


def _progress(job: JobItem) -> str:
    count = max(job.chunk_count, 0)
    done = min(job.chunks_done, count) if count else 0
    percent = 100 * done // count if count else (100 if job.state.terminal else 0)
    label = f"{done}/{count} chunks" if count else "planning"
    return (
        f'<progress value="{done}" max="{count or 1}"></progress> '
        f'<span class="progress-text" data-done="{done}" data-count="{count}">'
        f"{escape(label)} ({percent} %)</span>"
    )


def _duration(job: JobItem) -> str:
    end = job.finished_at if job.state.terminal and job.finished_at else datetime.now(UTC)
    seconds = (end - job.created_at).total_seconds()
    return f"{seconds:.1f} s"


def _model(job: JobItem) -> str:
    if job.model_name is None:
        return '<span class="muted">default</span>'
    return escape(f"{job.model_name} {job.model_version or ''}".strip())


def _job_url(job_id: str) -> str:
    return f"/jobs/{quote(job_id, safe='')}"


def _job_row(job: JobItem) -> str:
    error = escape(job.error or "")
    label = escape(job.job_id[:12])
    attributes = f'data-job-id="{escape(job.job_id)}"'
    if job.transform_job_name is not None:
        label = f"{job.transform_index}: {label}"
        attributes += f' class="transform-object" data-transform="{escape(job.transform_job_name)}"'
    return (
        f"<tr {attributes}>"
        f'<td><a href="{_job_url(job.job_id)}">{label}</a></td>'
        f"<td>{escape(job.input_key)}</td>"
        f"<td>{_state(job)}</td>"
        f"<td>{_progress(job)}</td>"
        f'<td class="num">{job.rows:,}</td>'
        f'<td class="num">{job.bad_rows:,}</td>'
        f"<td>{_model(job)}</td>"
        f"<td>{escape(job.created_at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f'<td class="num">{_duration(job)}</td>'
        f'<td class="error">{error}</td>'
        "</tr>"
    )


def _transform_row(group: TransformGroup) -> str:
    """A SageMaker transform job's own row, above its objects' rows."""
    status = group.status
    count, done = group.chunk_count, min(group.chunks_done, group.chunk_count)
    ended = sum(job.state.terminal for job in group.objects)
    return (
        f'<tr class="transform" data-transform-job="{escape(group.name)}">'
        f"<td>transform {escape(group.name)}</td>"
        f"<td>{len(group.objects)} objects, {ended} ended</td>"
        f'<td><span class="state state-{status}" data-state="{status}">{status}</span></td>'
        f'<td><progress value="{done}" max="{count or 1}"></progress> '
        f'<span class="progress-text">{done}/{count} chunks</span></td>'
        f'<td class="num">{group.rows:,}</td>'
        f'<td class="num">{group.bad_rows:,}</td>'
        f"<td>{_model(group.objects[0])}</td>"
        f"<td>{escape(group.created_at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        "<td></td>"
        f'<td class="error">{escape(group.first_error or "")}</td>'
        "</tr>"
    )


def jobs_fragment(jobs: Iterable[JobItem]) -> str:
    """Recent jobs; a transform job's objects are listed under its own row."""
    rows = []
    for entry in grouped(jobs):
        if isinstance(entry, TransformGroup):
            rows.append(_transform_row(entry))
            rows += [_job_row(job) for job in entry.objects]
        else:
            rows.append(_job_row(entry))
    body = "".join(rows) or '<tr><td colspan="10" class="muted">no jobs yet</td></tr>'
    return f"""<h1>byom jobs</h1>
<table id="jobs">
<thead><tr><th>job</th><th>input</th><th>state</th><th>progress</th><th>rows</th>
<th>bad rows</th><th>model</th><th>created (UTC)</th><th>duration</th><th>error</th></tr></thead>
<tbody>{body}</tbody>
</table>"""


@dataclass(frozen=True)
class Links:
    input: str | None
    output: str | None
    errors: str | None


def _object_link(label: str, uri: str | None, href: str | None) -> str:
    if uri is None or href is None:
        return f'<span class="muted">{escape(label)}: none</span>'
    link = f'<a class="object-link" href="{escape(href)}">{escape(label)}</a>'
    return f"{link} <code>{escape(uri)}</code>"


def _tree_order(spans: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Spans depth first, each under its parent, siblings by start time; with depths.

    A span whose parent is not (or not yet) in the trace is shown as a root, and so is
    the earliest span of a parent cycle (a span naming itself as parent, spans naming
    each other, a repeated span id): any process that reaches the trace receiver sends
    spans, so their links are not trusted. Each span is placed exactly once, so the walk
    ends whatever the links say."""
    by_start = sorted(range(len(spans)), key=lambda index: spans[index]["start_ns"])
    ids = {span["span_id"] for span in spans}
    children: dict[str, list[int]] = {}
    roots: list[int] = []
    for index in by_start:
        parent = spans[index].get("parent_span_id")
        if isinstance(parent, str) and parent in ids and parent != spans[index]["span_id"]:
            children.setdefault(parent, []).append(index)
        else:
            roots.append(index)
    placed = [False] * len(spans)
    ordered: list[tuple[dict[str, Any], int]] = []

    def walk(root: int) -> None:
        stack = [(root, 0)]
        while stack:
            index, depth = stack.pop()
            if placed[index]:  # two spans sharing an id share their children too
                continue
            placed[index] = True
            ordered.append((spans[index], depth))
            below = children.get(spans[index]["span_id"], [])
            stack.extend((child, depth + 1) for child in reversed(below) if not placed[child])

    for index in roots:
        walk(index)
    for index in by_start:  # only cycles are left: nothing above them is a root
        if not placed[index]:
            walk(index)
    return ordered


def _timeline(spans: list[dict[str, Any]]) -> str:
    if not spans:
        return '<p class="muted" id="timeline">no spans yet</p>'
    ordered = _tree_order(spans)
    shown = ordered[:MAX_TIMELINE_SPANS]
    start = min(span["start_ns"] for span, _ in shown)
    end = max(span["end_ns"] for span, _ in shown)
    total = max(end - start, 1)

    rows = []
    for span, depth in shown:
        offset = 1000 * (span["start_ns"] - start) / total
        width = max(1000 * (span["end_ns"] - span["start_ns"]) / total, 2.0)
        milliseconds = (span["end_ns"] - span["start_ns"]) / 1e6
        css = "bar-error" if span.get("status") == "error" else "bar"
        if span["attributes"].get(tracing.DONE_EVENT):
            css = "bar-done"
        indent = "\u00a0\u00a0" * min(depth, 16)
        title = escape(f"{span['service']}: {span['name']} ({milliseconds:.1f} ms)")
        rows.append(
            f'<tr class="span-row" data-span-id="{escape(span["span_id"])}">'
            f'<td class="muted">{escape(span["service"])}</td>'
            f"<td>{indent}{escape(span['name'])}</td>"
            f'<td class="num">{milliseconds:.1f} ms</td>'
            f'<td class="bar-cell"><svg class="{css}" viewBox="0 0 1000 12" '
            'preserveAspectRatio="none">'
            f"<title>{title}</title>"
            f'<rect x="{offset:.2f}" y="1" width="{width:.2f}" height="10"></rect></svg></td>'
            "</tr>"
        )
    more = len(spans) - len(shown)
    note = f'<p class="muted">{more} more spans not shown</p>' if more > 0 else ""
    return (
        f'<p class="muted">{len(spans)} spans, {total / 1e6:.1f} ms from first to last</p>'
        f'<table class="timeline" id="timeline"><thead><tr><th>service</th><th>span</th>'
        f"<th>duration</th><th>where the time went</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _chunks(job: JobItem, spans: list[dict[str, Any]]) -> str:
    scored: dict[int, list[dict[str, Any]]] = {}
    for span in spans:
        index = span["attributes"].get(tracing.CHUNK_INDEX)
        if span["name"] == "score chunk" and isinstance(index, int):
            scored.setdefault(index, []).append(span)
    by_id = {span["span_id"]: span for span in spans}
    rows = []
    for index in range(min(job.chunk_count, MAX_CHUNK_ROWS)):
        tries = scored.get(index, [])
        last = tries[-1] if tries else None
        child = by_id.get(last.get("parent_span_id") or "") if last else None
        array_index = child["attributes"].get("aws.batch.array_index") if child else None
        # The set of counted chunks is dropped when the job succeeds: all are in then.
        done = job.state is JobState.SUCCEEDED or index in job.done_chunks
        state = "done" if done else "waiting"
        chunk_rows = last["attributes"].get("byom.rows", "") if last else ""
        took = f"{(last['end_ns'] - last['start_ns']) / 1e6:.1f} ms" if last else ""
        child_text = "" if array_index is None else str(array_index)
        rows.append(
            f'<tr data-chunk="{index}"><td class="num">{index}</td><td>{state}</td>'
            f'<td class="num">{escape(str(chunk_rows))}</td><td class="num">{took}</td>'
            f'<td class="num">{escape(child_text)}</td><td class="num">{len(tries) or ""}</td></tr>'
        )
    more = job.chunk_count - len(rows)
    note = f'<p class="muted">{more} more chunks not shown</p>' if more > 0 else ""
    if not rows:
        return '<p class="muted">no chunks planned yet</p>'
    return (
        '<table id="chunks"><thead><tr><th>chunk</th><th>state</th><th>rows</th>'
        "<th>scoring time</th><th>array child</th><th>spans</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def job_fragment(
    job: JobItem,
    spans: list[dict[str, Any]],
    links: Links,
    errors_report: str | None,
    *,
    settled: bool,
) -> str:
    error = f'<p class="error" id="job-error">{escape(job.error)}</p>' if job.error else ""
    output_uri = f"s3://{job.bucket}/{job.output_key}" if links.output else None
    errors_uri = f"s3://{job.bucket}/{job.errors_key}" if links.errors else None
    if errors_report is None:
        report = '<p class="muted">no rejected rows</p>'
    else:
        report = f'<pre id="errors-report">{escape(errors_report)}</pre>'
    return f"""<section data-job-id="{escape(job.job_id)}" data-settled="{str(settled).lower()}">
<h1>job {escape(job.job_id)}</h1>
<dl>
<dt>state</dt><dd>{_state(job)}</dd>
<dt>progress</dt><dd>{_progress(job)}</dd>
<dt>rows</dt><dd>{job.rows:,} scored, {job.bad_rows:,} rejected</dd>
<dt>model</dt><dd>{_model(job)}</dd>
<dt>duration</dt><dd>{_duration(job)}</dd>
<dt>trace</dt><dd><code>{escape(job.trace_id or "none")}</code></dd>
<dt>input</dt><dd>{_object_link("input", f"s3://{job.bucket}/{job.input_key}", links.input)}</dd>
<dt>output</dt><dd>{_object_link("output", output_uri, links.output)}</dd>
<dt>errors</dt><dd>{_object_link("errors report", errors_uri, links.errors)}</dd>
{_control_facts(job)}</dl>
{error}
<h2>Timeline</h2>
{_timeline(spans)}
<h2>Chunks</h2>
{_chunks(job, spans)}
<h2>Errors report</h2>
{report}
</section>"""


def _control_facts(job: JobItem) -> str:
    """Its transform job (if an object of one) and how often it was retried."""
    facts = ""
    if job.transform_job_name is not None:
        facts += (
            f"<dt>transform job</dt><dd>{escape(job.transform_job_name)}, "
            f"object {job.transform_index}</dd>\n"
        )
    if job.retries:
        facts += f"<dt>retries</dt><dd>{job.retries}</dd>\n"
    waited = endpoint_capacity.waited(job, datetime.now(UTC))
    if waited is not None:
        so_far = " so far" if job.state is JobState.WAITING_FOR_ENDPOINT else ""
        facts += f'<dt>endpoint wait</dt><dd id="endpoint-wait">{waited:.1f} s{so_far}</dd>\n'
    return facts


def not_found(job_id: str) -> str:
    return f'<h1>no job {escape(job_id)}</h1><p><a href="/">all jobs</a></p>'
