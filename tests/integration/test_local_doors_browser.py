"""No web page can reach the running local stack: every server (moto, the model server,
the local Batch API, the dashboard, the trace receiver) refuses what a page sends.

A page in the system Chromium (as in test_dashboard.py), served from another origin,
tries to read and write through every server with fetch() and form POSTs; a page
whose name resolves to 127.0.0.1 (DNS rebinding) tries each server on its own port.
A control origin that allows CORS shows the page could read anything that let it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from botocore.exceptions import ClientError
from playwright.sync_api import Browser, Response, sync_playwright

from infra.local.processes import free_port
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from tests.integration.test_dashboard import CHROMIUM_ARGS, chromium  # noqa: F401
from tests.integration.test_local_doors import send

pytestmark = pytest.mark.integration

EVIL = "evil.example"  # resolved to 127.0.0.1 by the browser only
PLANTED = "input/planted.csv"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/batch/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)

ATTACK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>a page elsewhere</title></head><body>
<script>
async function tryFetch(target) {
  // No credentials: the local servers use no cookies, and a server allowing any
  // origin (as moto did) lets a page read only requests sent without them.
  const options = {method: target.method, mode: target.mode, credentials: "omit"};
  if (target.body !== null) {
    if (target.kind === "s3form") {
      const form = new FormData();
      form.append("key", target.body);
      form.append("x-amz-meta-planted", "yes");
      form.append("file", new Blob(["1,2,3\\n"], {type: "text/csv"}), "x.csv");
      options.body = form;
    } else {
      options.body = target.body;
      options.headers = {"Content-Type": target.contentType};
    }
  }
  try {
    const response = await fetch(target.url, options);
    if (response.type === "opaque") return {name: target.name, read: false, how: "opaque"};
    return {name: target.name, read: true, status: response.status,
            text: (await response.text()).slice(0, 300)};
  } catch (error) {
    return {name: target.name, read: false, how: String(error)};
  }
}

function submitForm(target) {
  const frame = document.createElement("iframe");
  frame.name = "sink-" + Math.random().toString(36).slice(2);
  document.body.appendChild(frame);
  const form = document.createElement("form");
  form.method = "POST";
  form.action = target.url;
  form.target = frame.name;
  form.enctype = target.kind === "s3form" ? "multipart/form-data" : "text/plain";
  const add = (name, value) => {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    form.appendChild(input);
  };
  if (target.kind === "s3form") {
    add("key", target.body);
    add("x-amz-meta-planted", "yes");
    const file = document.createElement("input");
    file.type = "file"; file.name = "file";
    const files = new DataTransfer();
    files.items.add(new File(["1,2,3\\n"], "x.csv", {type: "text/csv"}));
    file.files = files.files;
    form.appendChild(file);
  } else {
    // The text/plain form trick: name + "=" + value reads as the JSON body.
    const cut = target.body.length - 2;
    add(target.body.slice(0, cut), target.body.slice(cut));
  }
  document.body.appendChild(form);
  form.submit();  // the answer loads into the frame, where this page cannot read it
}

window.attack = async (targets) => {
  const results = [];
  for (const target of targets) results.push(await tryFetch(target));
  return results;
};
</script></body></html>
"""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    method: str = "GET"
    mode: str = "cors"
    body: str | None = None
    contentType: str = "text/plain"  # read by the page's script
    kind: str = "text"
    form: bool = False


class AttackSite:
    """The pages of another origin, on 127.0.0.1 (named evil.example in the browser)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    def _serve(self) -> None:
        async def attack(_request: web.Request) -> web.Response:
            return web.Response(text=ATTACK_PAGE, content_type="text/html")

        async def open_data(request: web.Request) -> web.Response:
            # The control: a server that lets any origin read it, credentials and all.
            allow = {
                "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
                "Access-Control-Allow-Credentials": "true",
            }
            return web.Response(text="readable", headers=allow)

        async def start() -> None:
            app = web.Application()
            app.router.add_get("/attack", attack)
            app.router.add_get("/open", open_data)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def __enter__(self) -> AttackSite:
        self._thread.start()
        assert self._ready.wait(30), "the attack site did not start"
        return self

    def __exit__(self, *_: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory) -> Iterator[LocalStack]:
    config = StackConfig(model_dir=model_dir, log_dir=tmp_path_factory.mktemp("doors-stack"))
    with LocalStack(config) as stack:
        yield stack


def servers(stack: LocalStack) -> dict[str, str]:
    return {
        "moto": stack.endpoint_url,
        "model server": f"http://127.0.0.1:{stack.model_port}",
        "batch": f"http://127.0.0.1:{stack.batch_port}",
        "dashboard": stack.dashboard_url,
        "traces": stack.traces_url,
    }


def probes(stack: LocalStack) -> dict[str, tuple[str, str, dict[str, str], bytes | None]]:
    """Per server, a request its own clients get an answer to (not 403)."""
    bucket, endpoint = stack.config.bucket, stack.config.endpoint_name
    return {
        "moto": ("GET", f"/{bucket}?list-type=2", {}, None),
        "model server": ("GET", "/_byom/faults", {}, None),
        "batch": (
            "POST",
            "/v1/describejobs",
            {"Content-Type": "application/json", "Authorization": SIGV4},
            b'{"jobs": []}',
        ),
        "dashboard": ("GET", "/api/jobs", {}, None),
        "traces": ("GET", f"/v1/spans?job_id={endpoint}", {}, None),
    }


def test_every_server_refuses_other_hosts_and_pages(stack: LocalStack) -> None:
    """Plain HTTP: the same request, own Host and no browser headers, then as a page."""
    refusals: dict[str, list[int]] = {}
    for name, url in servers(stack).items():
        method, path, headers, body = probes(stack)[name]
        port = url.rsplit(":", 1)[1]
        own = send(url, path, method=method, headers=headers, body=body)
        assert own.status != 403, (name, own)
        refusals[name] = [
            send(url, path, method=method, headers=headers | extra, body=body).status
            for extra in (
                {"Host": f"{EVIL}:{port}"},  # DNS rebinding
                {"Host": f"127.0.0.1:{int(port) + 1}"},
                {"Origin": f"http://{EVIL}"},
                {"Origin": f"http://127.0.0.1:{free_port()}"},
                {"Sec-Fetch-Site": "cross-site"},
            )
        ]
    assert refusals == {name: [403] * 5 for name in servers(stack)}


def targets(stack: LocalStack) -> list[Target]:
    urls = servers(stack)
    moto, model, batch = urls["moto"], urls["model server"], urls["batch"]
    bucket, endpoint = stack.config.bucket, stack.config.endpoint_name
    faults = json.dumps({"status": 500, "count": 1000, "pad": ""})
    job = json.dumps({"jobName": "planted", "jobQueue": "q", "jobDefinition": "byom-worker"})
    found: list[Target] = [
        Target("moto list", f"{moto}/{bucket}?list-type=2"),
        Target("moto get", f"{moto}/{bucket}/{PLANTED}"),
        Target("moto put", f"{moto}/{bucket}/{PLANTED}", "PUT", body="1,2,3\n"),
        Target("moto post", f"{moto}/{bucket}", "POST", "no-cors", PLANTED, kind="s3form"),
        Target("moto form", f"{moto}/{bucket}", "POST", body=PLANTED, kind="s3form", form=True),
        Target("model ping", f"{model}/ping"),
        Target("model faults read", f"{model}/_byom/faults"),
        Target("model faults", f"{model}/_byom/faults", "POST", "no-cors", faults),
        Target("model faults form", f"{model}/_byom/faults", "POST", body=faults, form=True),
        Target(
            "model invoke",
            f"{model}/endpoints/{endpoint}/invocations",
            "POST",
            body="1,2,3\n",
            contentType="text/csv",
        ),
        Target("batch submit", f"{batch}/v1/submitjob", "POST", "no-cors", job),
        Target("batch submit form", f"{batch}/v1/submitjob", "POST", body=job, form=True),
        Target("batch describe", f"{batch}/v1/describejobs", "POST", body='{"jobs": []}'),
        Target("dashboard jobs", f"{urls['dashboard']}/api/jobs"),
        Target("dashboard page", f"{urls['dashboard']}/"),
        Target("traces ping", f"{urls['traces']}/ping"),
        Target("traces spans", f"{urls['traces']}/v1/spans?job_id=x"),
        Target("traces post", f"{urls['traces']}/v1/traces", "POST", "no-cors", "x"),
    ]
    return found


def _attack(browser: Browser, page_url: str, attack: list[Target]) -> list[dict[str, Any]]:
    """What the page could read of each fetch, and what each form POST was answered
    (seen by the browser, not by the page: the answer loads into a frame)."""
    page = browser.new_page()
    try:
        page.set_default_timeout(30_000)
        page.goto(page_url)
        fetches = [target for target in attack if not target.form]
        results: list[dict[str, Any]] = page.evaluate(
            "targets => window.attack(targets)", [vars(target) for target in fetches]
        )
        for target in attack:
            if not target.form:
                continue

            def is_answer(response: Response, url: str = target.url) -> bool:
                return response.url == url and response.request.method == "POST"

            with page.expect_response(is_answer) as answer:
                page.evaluate("target => submitForm(target)", vars(target))
            results.append({"name": target.name, "form": True, "status": answer.value.status})
        return results
    finally:
        page.close()


def planted(stack: LocalStack) -> bool:
    try:
        stack.client("s3").head_object(Bucket=stack.config.bucket, Key=PLANTED)
    except ClientError:
        return False
    return True


def test_no_page_elsewhere_can_read_or_write_through_the_stack(
    stack: LocalStack,
    chromium,  # noqa: F811
) -> None:
    attack = targets(stack)
    with AttackSite() as site, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium),
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"],
        )
        try:
            # A page of another site, and a page of another port of this machine.
            origins = [f"http://{EVIL}:{site.port}", f"http://127.0.0.1:{site.port}"]
            for origin, other in zip(origins, reversed(origins), strict=True):
                control = Target("control", f"{other}/open")
                results = _attack(browser, f"{origin}/attack", [control, *attack])
                assert results[0] == {
                    "name": "control",
                    "read": True,
                    "status": 200,
                    "text": "readable",
                }, "the browser would not let the page read even an open server"
                read = [r for r in results[1:] if r.get("read")]
                assert read == [], f"{origin} read through the stack: {read}"
                forms = {r["name"]: r["status"] for r in results if r.get("form")}
                assert forms == {t.name: 403 for t in attack if t.form}
        finally:
            browser.close()
    assert not planted(stack), "a page wrote into the bucket"
    faults = send(servers(stack)["model server"], "/_byom/faults")
    assert json.loads(faults.body) == {"status": None, "count": 0}, "a page set model faults"


def test_no_page_can_rebind_its_name_to_a_local_server(
    stack: LocalStack,
    chromium,  # noqa: F811
) -> None:
    """A page at evil.example:PORT, its name resolving to 127.0.0.1, is same-origin with
    whatever listens on PORT: each server must refuse it by its Host."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium),
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"],
        )
        try:
            page = browser.new_page()
            answers = {}
            for name, url in servers(stack).items():
                method, path, _, _ = probes(stack)[name]
                port = url.rsplit(":", 1)[1]
                response = page.goto(f"http://{EVIL}:{port}{path if method == 'GET' else '/'}")
                assert response is not None
                same_origin = page.evaluate(
                    """async (path) => {
                        const response = await fetch(path, {method: "POST", body: "{}",
                            headers: {"Content-Type": "application/json"}});
                        return response.status;
                    }""",
                    path,
                )
                answers[name] = (response.status, same_origin)
        finally:
            browser.close()
    assert answers == {name: (403, 403) for name in servers(stack)}
