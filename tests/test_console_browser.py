"""The operator console in a real browser: Debian's Chromium driven by Playwright, against the real pipeline.

Screenshots of the main screens go to ``$CAREBED_SCREENSHOTS`` when set (the README's come from
``CAREBED_SCREENSHOTS=docs/screenshots pytest -m browser``), else to the test's own folder.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from alerting.auth import Role, create_user
from carebed import topics
from carebed.db import make_engine, make_sessionmaker
from carebed.mqtt import MqttClient, Outbound
from carebed.registry import RegistryFile
from carebed.schemas import utc_now
from carebed.settings import Settings
from simulators.homes import SIMULATED_KINDS, SimulatedHome
from tests.conftest import OPERATOR, alerting_url, login
from tests.support import ServiceProcess, wait_for
from tests.test_end_to_end import press_sos, start_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
SUPERVISOR = ("supervisor", "supervisor password 1")
EXPECT_S = 20_000


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    assert CHROMIUM.exists(), "Debian's chromium is expected at /usr/bin/chromium (scripts/setup.sh test installs it)"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            viewport={"width": 1500, "height": 1000},
            locale="zh-CN",
        )
        context.set_default_timeout(EXPECT_S)
        expect.set_options(timeout=EXPECT_S)
        yield context
        context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CAREBED_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("nav a[data-view=queue]")).to_be_visible()


def publish_a_day(device: MqttClient, settings: Settings, registry: RegistryFile) -> None:
    """The last day of the first home, one report per device every 15 minutes, as the simulator models them."""
    home = SimulatedHome(registry.homes[0], settings.tz, random.Random(3))
    start = utc_now() - timedelta(hours=23)
    for step in range(23 * 4):
        at = start + timedelta(minutes=15 * step)
        for kind in SIMULATED_KINDS:
            message = home.report(kind, at)
            device.publish(
                Outbound(topics.device(message.device_id, message.channel), json.dumps(message.payload).encode())
            )


def test_operator_and_supervisor_work_the_console(
    settings: Settings,
    registry: RegistryFile,
    database: str,
    services: dict[str, ServiceProcess],
    device: MqttClient,
    browser: BrowserContext,
    shots: Path,
    tmp_path: Path,
) -> None:
    with make_sessionmaker(make_engine(database)).begin() as session:
        create_user(session, *SUPERVISOR, Role.SUPERVISOR)
    start_pipeline(services, settings)
    base = alerting_url(settings)
    home = registry.homes[0]
    publish_a_day(device, settings, registry)
    api = login(base)
    wait_for(lambda: len(api.get(f"/api/v1/homes/{home.id}/activity").json()["buckets"]) > 80, 20, "the day's rollup")

    # An operator signs in; an SOS published on the broker appears without a reload.
    page = browser.new_page()
    sign_in(page, base, *OPERATOR)
    expect(page.locator("nav a[data-view=queue]")).to_have_text("告警队列")
    press_sos(device, settings, home)
    row = page.locator("#alerts tbody tr.urgent", has_text="SOS")
    expect(row).to_be_visible()
    expect(row).to_contain_text(home.residents[0].name)
    expect(page.locator("#live")).to_have_text("实时")
    page.screenshot(path=shots / "queue.png")

    # Open it: resident, evidence, chart, messages; acknowledge, then resolve.
    row.click()
    detail = page.locator("#detail")
    expect(detail.locator("h2")).to_contain_text("SOS")
    expect(detail).to_contain_text(home.residents[0].name)
    expect(detail).to_contain_text(home.address)
    expect(detail.locator("svg.chart line.anomaly")).to_have_count(1)
    expect(detail.locator("svg.chart rect").first).to_be_visible()
    expect(detail.locator("table.notifications")).to_contain_text("已发送")
    page.screenshot(path=shots / "alert-detail.png", full_page=True)
    detail.locator("button.ack").click()
    expect(detail.locator("h2 .st-acknowledged")).to_be_visible()
    expect(detail.locator(".audit")).to_contain_text(OPERATOR[0])
    detail.locator("button.arrived").click()
    expect(detail.locator(".audit")).to_contain_text("已到达现场")
    expect(detail.locator("button.arrived")).to_be_disabled()
    detail.locator("select[name=outcome]").select_option("resident_ok")
    detail.locator("button.resolve").click()
    expect(detail.locator("h2 .st-resolved")).to_be_visible()
    expect(page.locator("#alerts tbody tr.urgent")).to_have_count(0)

    # Switch language: labels, statuses and the outcome follow.
    page.click("#lang")
    expect(page.locator("nav a[data-view=queue]")).to_have_text("Alert queue")
    expect(detail.locator("h2")).to_contain_text("resolved")
    expect(detail.locator(".audit")).to_contain_text("Resident OK")

    # An operator may not see the dashboard nor import a registry.
    expect(page.locator("nav a[data-view=dashboard]")).to_have_count(0)
    page.goto(base + "/#dashboard")
    expect(page.locator("#dashboard .forbidden")).to_have_text("You do not have the rights to see this page.")
    bad_file = tmp_path / "homes.csv"
    bad_file.write_text(
        "home_id,address,community,kind,name,birth_year,phone,relation,device_id,device_kind\n"
        "h-new,人民路1号,新社区,resident,王秀英,1941,,,,\n"
        "h-new,,,responder,王强,,12345,son,,\n"
        "h-new,,,device,,,,,w-new,wearable\n",
        encoding="utf-8",
    )
    page.goto(base + "/#registry")
    page.set_input_files("#import-file", bad_file)
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-result")).to_have_text("You do not have the rights to see this page.")
    page.click("header form button[type=submit]")
    expect(page).to_have_url(base + "/login")

    # A supervisor imports a file with a bad row: the report names row and field, nothing is imported.
    sign_in(page, base, *SUPERVISOR)
    page.goto(base + "/#registry")
    expect(page.locator("#devices")).to_contain_text(home.devices[0].id)
    page.set_input_files("#import-file", bad_file)
    page.click("#import-form button[type=submit]")
    errors = page.locator("#import-result table tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("3")
    expect(errors.first).to_contain_text("phone")
    expect(page.locator("#homes")).not_to_contain_text("h-new")
    page.screenshot(path=shots / "registry.png", full_page=True)

    page.click("nav a[data-view=dashboard]")
    table = page.locator("#dashboard-table")
    expect(table.locator("tbody tr").first).to_contain_text("All communities")
    page.screenshot(path=shots / "dashboard.png", full_page=True)
