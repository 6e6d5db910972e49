"""The dashboard in a real browser (Debian's chromium, driven by Playwright), against a running dreamd.

Run by scripts/ui-check.sh, which starts PostgreSQL, `dreamd sim`, `dreamd serve` and a webhook receiver and
sets: DREAMD_URL, DREAMD_ADMIN_TOKEN, DREAMD_READ_TOKEN, DREAMD_HOOK_URL; optional UI_SCREENSHOTS (a folder:
a screenshot of each page is saved there, for docs/ui.md).
"""

import json
import os
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

URL = os.environ["DREAMD_URL"]
ADMIN = os.environ["DREAMD_ADMIN_TOKEN"]
READER = os.environ["DREAMD_READ_TOKEN"]
HOOK = os.environ["DREAMD_HOOK_URL"]
SHOTS = os.environ.get("UI_SCREENSHOTS")
IMAGE_JOB = {"kind": "image_gen", "params": {"prompt": "a watercolor fox", "num_samples": 2, "width": 512, "height": 512, "base_model": "sd-1.5"},
             "metadata": {"team": "vision"}}


def api(method, path, body=None, token=ADMIN):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_state(job_id, states, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api("GET", f"/v1/jobs/{job_id}")
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {states}: {job['state']}")


def shot(page, name, full_page=True):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full_page)


def sign_in(page, token):
    page.goto(URL + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.fill("input[name=key]", token)
    page.click("button:has-text('Sign in')")
    expect(page.locator("h1")).to_have_text("Overview")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def admin(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(URL + "/ui/login")
    shot(page, "login", full_page=False)
    sign_in(page, ADMIN)
    yield page
    context.close()


def test_a_submitted_job_appears_and_finishes_with_its_audit_timeline(admin):
    api("POST", "/v1/subscriptions", {"url": HOOK, "event_types": ["job.*"], "description": "ui-check receiver"})
    admin.goto(URL + "/ui/jobs")
    job = api("POST", "/v1/jobs", IMAGE_JOB)
    # The list refreshes itself: the new job shows up without a reload.
    expect(admin.locator(f"a[href='/ui/jobs/{job['id']}']")).to_be_visible(timeout=15000)
    admin.click(f"a[href='/ui/jobs/{job['id']}']")
    expect(admin.locator("h1 .pill")).to_have_text("succeeded", timeout=30000)  # live, no reload
    timeline = admin.locator("#timeline li")
    expect(timeline.first).to_contain_text("∅ → queued")
    expect(timeline.last).to_contain_text("→ succeeded")
    expect(admin.locator(".images a").first).to_be_visible()
    # Its webhook delivery is listed on the job's page.
    deadline = time.time() + 20
    while time.time() < deadline and admin.locator("text=job.succeeded").count() == 0:
        time.sleep(0.5)
        admin.reload()
    expect(admin.locator("td", has_text="job.succeeded")).to_be_visible()
    shot(admin, "job")


def test_cancel_a_scheduled_job(admin):
    job = api("POST", "/v1/jobs", dict(IMAGE_JOB, run_at="2099-01-01T00:00:00Z"))
    admin.goto(URL + f"/ui/jobs/{job['id']}")
    expect(admin.locator("h1 .pill")).to_have_text("scheduled")
    admin.click("button:has-text('Cancel')")  # the confirmation is accepted
    expect(admin.locator(".flash")).to_have_text("Job cancelled.")
    expect(admin.locator("h1 .pill")).to_have_text("cancelled")
    assert api("GET", f"/v1/jobs/{job['id']}")["state"] == "cancelled"
    expect(admin.locator("#timeline li").last).to_contain_text("by ui")


def test_retry_a_failed_job(admin):
    # The simulator fails every DreamGen stream; one attempt, so the job fails at once.
    job = api("POST", "/v1/jobs", {"kind": "completion", "params": {"model": "opus-v1-sm", "input": "Once upon a time"}, "max_attempts": 1})
    wait_state(job["id"], {"failed"})
    admin.goto(URL + f"/ui/jobs/{job['id']}")
    expect(admin.locator("h1 .pill")).to_have_text("failed")
    admin.click("button:has-text('Retry')")
    expect(admin.locator(".flash")).to_have_text("Job queued again.")
    events = api("GET", f"/v1/jobs/{job['id']}/events")["data"]
    retry = [e for e in events if e["from_state"] == "failed" and e["to_state"] == "queued"]
    assert retry and retry[0]["actor"] == "ui" and retry[0]["detail"]["api_key_name"] == "ui-admin"
    expect(admin.locator("#timeline")).to_contain_text("failed → queued")


def test_redeliver_a_delivery(admin):
    deadline = time.time() + 30
    while time.time() < deadline and not api("GET", "/v1/deliveries")["data"]:
        time.sleep(0.5)
    admin.goto(URL + "/ui/deliveries")
    shot(admin, "deliveries")
    before = len(api("GET", "/v1/deliveries?limit=500")["data"])
    admin.locator("button:has-text('Redeliver')").first.click()
    expect(admin.locator(".flash")).to_have_text("Redelivery queued.")
    expect(admin.locator("h1")).to_contain_text("job.")
    assert len(api("GET", "/v1/deliveries?limit=500")["data"]) == before + 1


def test_a_form_without_its_csrf_token_is_refused(admin):
    job = api("POST", "/v1/jobs", dict(IMAGE_JOB, run_at="2099-01-01T00:00:00Z"))
    admin.goto(URL + f"/ui/jobs/{job['id']}")
    # The same form, its hidden csrf field taken out, posted by the signed-in browser.
    admin.evaluate("document.querySelector('form[action$=\"/cancel\"] input[name=csrf]').remove()")
    admin.click("button:has-text('Cancel')")
    expect(admin.locator("h1")).to_contain_text("403")
    expect(admin.locator("main")).to_contain_text("CSRF")
    assert api("GET", f"/v1/jobs/{job['id']}")["state"] == "scheduled"
    # A cross-site style post with no token at all (fetch from the page) is refused too.
    status = admin.evaluate(f"fetch('/ui/jobs/{job['id']}/cancel', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, body: 'x=1'}}).then(r => r.status)")
    assert status == 403
    assert api("GET", f"/v1/jobs/{job['id']}")["state"] == "scheduled"


def test_a_read_only_key_sees_no_action_buttons(browser):
    job = api("POST", "/v1/jobs", dict(IMAGE_JOB, run_at="2099-01-01T00:00:00Z"))
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, READER)
    expect(page.locator(".who .scope")).to_have_text("read")
    for path in ["/ui", f"/ui/jobs/{job['id']}", "/ui/deliveries", "/ui/schedules", "/ui/checkpoints"]:
        page.goto(URL + path)
        buttons = page.locator("main button")
        assert buttons.count() == 0 or all(t.strip() in ("Filter", "Show") for t in buttons.all_inner_texts()), (path, buttons.all_inner_texts())
    context.close()


def test_every_page_and_sign_out(admin, browser):
    api("POST", "/v1/schedules", {"name": "nightly foxes", "cron": "0 3 * * *", "timezone": "Europe/Paris",
                                  "job": {"kind": "image_gen", "params": IMAGE_JOB["params"]}})
    for path, name, heading in [("/ui", "overview", "Overview"), ("/ui/jobs", "jobs", "Jobs"), ("/ui/costs", "costs", "Costs"),
                                ("/ui/schedules", "schedules", "Schedules"), ("/ui/checkpoints", "checkpoints", "Checkpoints")]:
        admin.goto(URL + path)
        expect(admin.locator("h1")).to_have_text(heading)
        shot(admin, name)
    admin.goto(URL + "/ui/jobs?q=team%3Dvision")
    expect(admin.locator("table.jobs tbody tr").first).to_contain_text("image_gen")
    # The overview on a phone.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = phone.new_page()
    sign_in(page, ADMIN)
    shot(page, "overview-phone")
    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(URL + "/ui")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    phone.close()
