"""In a real browser: sign up, get a token, have a form, fill it in as somebody else (one failed
validation first), and see the response counted on the dashboard. Screenshots of each main page."""

from __future__ import annotations

import re

from playwright.async_api import expect

QUESTIONS = [
    {"text": "Your name", "mandatory": True, "help_text": "As you would like to be addressed."},
    {"text": "Tell us more", "kind": "long_text"},
    {"text": "How many people are in your team?", "kind": "number", "constraints": {"integer_only": True, "min": 1}},
    {"text": "Email", "kind": "email", "mandatory": True},
    {"text": "Phone", "kind": "phone"},
    {"text": "Website", "kind": "url"},
    {"text": "Favourite colour", "kind": "single_choice", "options": ["Red", "Green", "Blue"]},
    {"text": "Tools you use", "kind": "multiple_choice", "options": ["Sheets", "Slack", "Notion"]},
    {"text": "Country", "kind": "dropdown", "options": ["France", "Germany", "Kenya"]},
    {"text": "Start date", "kind": "date"},
    {"text": "How likely are you to recommend us?", "kind": "rating", "constraints": {"scale": 5}},
    {"text": "May we contact you?", "kind": "yes_no", "mandatory": True},
]


async def _open_form(page, api_token, api, **extra):
    token = await api_token(page)
    status, form = await api("POST", "/api/v1/forms", token, json={
        "title": "Team survey", "description": "Five minutes, and it helps a lot.", "status": "open",
        "confirmation_message": "Thanks! We read every answer.", "questions": QUESTIONS, **extra})
    assert status == 201, form
    return form


async def test_sign_up_share_and_respond_with_one_failed_attempt(page, new_context, signup, api_token, api, shot):
    await page.goto("/")
    await expect(page.get_by_role("link", name="Create your first form")).to_be_visible()
    await shot(page, "home")
    await page.goto("/login")
    await expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()
    await shot(page, "login")

    await signup(page)
    await expect(page.get_by_role("heading", name="You have no forms yet")).to_be_visible()
    await expect(page.locator(".flash--success")).to_contain_text("Welcome to Formwright")
    await shot(page, "dashboard-empty")

    form = await _open_form(page, api_token, api)
    await expect(page.get_by_role("heading", name="Your new token “e2e”")).to_be_visible()
    await shot(page, "tokens")
    await page.goto("/forms")
    row = page.locator("tr", has_text="Team survey")
    await expect(row.locator(".badge")).to_have_text("Open")
    await expect(row.locator("td.num")).to_have_text("0")
    await shot(page, "dashboard")
    # Search filters the list in place (htmx), and the address follows.
    await page.get_by_label("Search my forms").fill("bakery")
    await expect(page.get_by_role("heading", name="No forms match “bakery”")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/forms\?q=bakery$"))
    await page.get_by_label("Search my forms").fill("team")
    await expect(page.locator("tr", has_text="Team survey")).to_be_visible()

    # Somebody else, in their own browser context, fills the form in.
    other = await (await new_context()).new_page()
    await other.goto(f"/f/{form['slug']}")
    await expect(other.get_by_role("heading", name="Team survey")).to_be_visible()
    await shot(other, "respond")
    await other.get_by_label("Tell us more").fill("We run a small bakery.")
    await other.get_by_label("Email").fill("not-an-email")
    await other.get_by_role("group", name="Tools you use").get_by_label("Slack").check()
    await other.get_by_role("group", name="Tools you use").get_by_label("Notion").check()
    await other.get_by_label("Country").select_option("Kenya")
    await other.get_by_role("button", name="Submit").click()

    summary = other.locator(".error-summary")
    await expect(summary).to_be_visible()
    await expect(summary).to_be_focused()
    await expect(summary.get_by_role("link")).to_have_text([
        "Your name: This question is required.",
        "Email: Enter an email address like name@example.com.",
        "May we contact you?: This question is required.",
    ])
    # What the person typed is still there.
    await expect(other.get_by_label("Tell us more")).to_have_value("We run a small bakery.")
    await expect(other.get_by_label("Email")).to_have_value("not-an-email")
    await expect(other.get_by_role("group", name="Tools you use").get_by_label("Slack")).to_be_checked()
    await expect(other.get_by_label("Country")).to_have_value("Kenya")
    # The summary link moves to the field, whose error is announced with it.
    await summary.get_by_role("link", name=re.compile("^Email")).click()
    await expect(other.get_by_label("Email")).to_be_focused()
    await expect(other.get_by_label("Email")).to_have_attribute("aria-describedby", re.compile("-error"))
    await shot(other, "respond-errors")

    await other.get_by_label("Your name").fill("Wanjiru")
    await other.get_by_label("Email").fill("wanjiru@example.com")
    await other.get_by_role("group", name="How likely are you to recommend us?").get_by_label("4").check()
    await other.get_by_role("group", name="May we contact you?").get_by_label("Yes").check()
    await other.get_by_role("button", name="Submit").click()
    await expect(other.get_by_role("heading", name="Thank you!")).to_be_visible()
    await expect(other.get_by_text("Thanks! We read every answer.")).to_be_visible()
    await shot(other, "thanks")

    await page.goto("/forms")
    row = page.locator("tr", has_text="Team survey")
    await expect(row.locator("td.num")).to_have_text("1")
    await expect(row).to_contain_text("just now")
    status, listing = await api("GET", f"/api/v1/forms/{form['id']}/responses", await api_token(page, "check"))
    answers = {a["text"] for a in listing["items"][0]["answers"]}
    assert {"Wanjiru", "wanjiru@example.com", "Slack, Notion", "Kenya", "4", "Yes"} <= answers


async def test_respondent_without_javascript_on_a_phone(page, new_context, signup, api_token, api, shot):
    await signup(page)
    form = await _open_form(page, api_token, api)
    phone = await (await new_context(java_script_enabled=False, viewport={"width": 375, "height": 740})).new_page()
    await phone.goto(f"/f/{form['slug']}")
    # Nothing sticks out sideways at phone width.
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 375
    await phone.get_by_label("Your name").fill("Ana")
    await phone.get_by_label("Email").fill("ana@example.com")
    await phone.get_by_role("group", name="May we contact you?").get_by_label("No").check()
    await shot(phone, "respond-phone")
    await phone.get_by_role("button", name="Submit").click()
    await expect(phone.get_by_role("heading", name="Thank you!")).to_be_visible()


async def test_logged_out_visitor_is_sent_to_login_and_back(page, signup, shot):
    email = await signup(page)
    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator(".flash")).to_contain_text("logged out")
    await page.goto("/account/tokens")
    await expect(page).to_have_url(re.compile(r"/login\?next=/account/tokens$"))
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password").fill("wrong password!")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator(".error-summary")).to_contain_text("not right")
    await shot(page, "login-error")
    await page.get_by_label("Password").fill("correct horse battery staple")
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/account/tokens$"))
    await expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
