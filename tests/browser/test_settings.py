"""The settings pages in a real browser behind nginx: an admin creates an API key (shown
once, working on the API), revokes it after confirming (refused at once), invites a user
(the one-time link shown once); a viewer sees no Settings and gets a 403 page; every
settings page passes the accessibility check on a laptop and a phone."""

from __future__ import annotations

import uuid

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_text
from tests.support import TenantKey, make_user

pytestmark = pytest.mark.browser


def api_status(browse: Browse, key: str) -> int:
    response = httpx.get(
        f"{browse.site.url}/v1/runs", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return response.status_code


async def test_an_admin_creates_and_revokes_a_key_and_invites_a_user(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    admin = await make_user(resources, tenant, "admin")
    browse.login(admin, to="/console/settings")
    assert "Settings" in browse.text("h1")
    assert browse.driver.find_element(By.CSS_SELECTOR, "header nav a[href='/console/settings']")
    browse.check("settings")

    # A key: created, shown once, working; then revoked after confirming, and refused.
    browse.driver.find_element(By.CSS_SELECTOR, "a[href='/console/settings/keys']").click()
    browse.find("#key-name").send_keys("browser key")
    browse.driver.find_element(By.CSS_SELECTOR, "input[name='scopes'][value='write']").click()
    Select(browse.find("#key-expiry")).select_by_value("30")
    browse.driver.find_element(
        By.CSS_SELECTOR, "form[action='/console/settings/keys'] button"
    ).click()
    key = browse.text(".secret-once code")
    assert key.startswith("mas_")
    assert browse.driver.current_url.removeprefix(browse.site.url) == "/console/settings/keys"
    browse.check("settings-keys-created")
    assert api_status(browse, key) == 200

    browse.go("/console/settings/keys")
    assert key not in browse.text()  # never again
    prefix = "_".join(key.split("_")[:2])
    browse.find(f"button[aria-label='Revoke {prefix}']").click()
    browse.driver.switch_to.alert.accept()
    wait_for_text(browse.driver, "The key is revoked", ".notice")
    assert api_status(browse, key) == 401
    browse.check("settings-keys")

    # A user: invited, the one-time link shown once.
    browse.go("/console/settings/users")
    email = f"invited-{uuid.uuid4().hex[:8]}@example.test"
    browse.find("#invite-email").send_keys(email)
    Select(browse.find("#invite-role")).select_by_value("editor")
    browse.driver.find_element(
        By.CSS_SELECTOR, "form[action='/console/settings/users'] button"
    ).click()
    link = browse.text(".secret-once code")
    assert "/console/set-password?token=" in link
    assert email in browse.text("table.users")
    browse.check("settings-users")

    # Provider secrets: this tenant is no operator of the deployment, so it is told so.
    browse.go("/console/settings/secrets")
    assert "only its operators manage them" in browse.text()
    browse.check("settings-secrets")


async def test_a_viewer_sees_no_settings_and_gets_a_403_page(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    viewer = await make_user(resources, tenant, "viewer")
    browse.login(viewer, to="/console/settings/keys")
    assert "403" in browse.text()
    links = browse.driver.find_elements(By.CSS_SELECTOR, "header nav a")
    assert "Settings" not in [a.text for a in links]
    assert not browse.driver.find_elements(By.CSS_SELECTOR, "#key-name")
    browse.check("settings-forbidden")
