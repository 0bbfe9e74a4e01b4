"""The whole journey in a real browser: sign up, build a form with every kind of question in the
builder, publish it, fill it in from another browser (one failed validation first), read the
response in the table, the detail and the summary, and export it as CSV. Then: a request without
the CSRF token is refused, and another person gets 404 on the builder and the results.
Screenshots: builder, preview, responses table, response detail, summary."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from playwright.async_api import expect

# (kind value, the kind's label in the builder, question text)
KINDS = [
    ("short_text", "Short answer", "Your name"),
    ("long_text", "Paragraph", "Tell us more"),
    ("number", "Number", "How many people are in your team?"),
    ("email", "Email", "Email"),
    ("phone", "Phone number", "Phone"),
    ("url", "Web address", "Website"),
    ("single_choice", "Multiple choice (one answer)", "Favourite colour"),
    ("multiple_choice", "Checkboxes (several answers)", "Tools you use"),
    ("dropdown", "Dropdown", "Country"),
    ("date", "Date", "Start date"),
    ("rating", "Rating", "How likely are you to recommend us?"),
    ("yes_no", "Yes / No", "May we contact you?"),
]
CHOICES = {"Favourite colour": ["Red", "Green", "Blue"], "Tools you use": ["Sheets", "Slack", "Notion"],
           "Country": ["France", "Kenya"]}


def _saves(page, what: str = "/questions/"):
    """Wait for the save an edit triggers (the htmx POST), instead of sleeping."""
    return page.expect_response(lambda r: what in r.url and r.request.method == "POST")


async def _edit(page, card, label: str, value: str) -> None:
    field = card.get_by_label(label, exact=True)
    await field.fill(value)
    async with _saves(page):
        await field.press("Tab")  # leaving the field fires "change": the card saves itself


async def _build(page, shot) -> str:
    """Create the form on the dashboard and build it in the builder; returns the builder URL."""
    await page.get_by_label("New form title").fill("Team survey")
    await page.get_by_role("button", name="+ Create form").click()
    await expect(page).to_have_url(re.compile(r"/forms/[0-9a-f-]+/edit$"))
    await expect(page.locator(".flash--success")).to_contain_text("Your form is ready")
    builder_url = page.url

    details = page.locator("#form-details")
    await details.get_by_label("Description").fill("Five minutes, and it helps a lot.")
    async with _saves(page, "/edit/details"):
        await details.get_by_label("Description").press("Tab")
    await expect(page.locator("#form-details .save-state__text")).to_have_text("✓ Saved")

    add = page.locator("#add-question")
    for i, (kind, _label, text) in enumerate(KINDS):
        await add.get_by_label("Kind").select_option(kind)
        await add.get_by_label("Question").fill(text)
        await add.get_by_role("button", name="+ Add question").click()
        await expect(page.locator(".qcard")).to_have_count(i + 1)
        # The new question's text field has the focus, ready for editing.
        await expect(page.locator(".qcard").nth(i).get_by_label("Question", exact=True)).to_be_focused()

    cards = {text: page.locator(".qcard", has=page.get_by_role("heading", name=text)) for *_, text in KINDS}
    await expect(cards["Favourite colour"].locator(".qcard__kind")).to_have_text("Multiple choice (one answer)")
    for text, choices in CHOICES.items():
        card = cards[text]
        for n, choice in enumerate(choices[:2], start=1):
            await _edit(page, card, f"Choice {n}", choice)
        if len(choices) > 2:
            async with _saves(page):
                await card.get_by_role("button", name="+ Add choice").click()
            await expect(card.get_by_label("Choice 3", exact=True)).to_be_focused()
            await _edit(page, card, "Choice 3", choices[2])
        assert [await o.input_value() for o in await card.locator('input[name="options"]').all()] == choices
    for text in ("Your name", "Email", "May we contact you?"):
        async with _saves(page):
            await cards[text].get_by_label("Required").check()
    await _edit(page, cards["Your name"], "Help text (optional)", "As you would like to be addressed.")
    number = cards["How many people are in your team?"]
    await number.get_by_text("Answer rules").click()
    # Typing on while a save runs loses nothing: the next field is filled before the save answers.
    smallest, largest = number.get_by_label("Smallest number (optional)"), number.get_by_label("Largest number (optional)")
    async with _saves(page):
        await smallest.fill("1")
        await smallest.press("Tab")
        await largest.fill("400")
    async with _saves(page):
        await largest.press("Tab")
    await expect(largest).to_have_value("400")
    await expect(smallest).to_have_value("1")
    async with _saves(page):
        await number.get_by_label("Whole numbers only").check()
    await expect(number.locator(".save-state__text")).to_have_text("✓ Saved")

    # A mistake is shown in place, and nothing is saved until it is fixed.
    await number.get_by_label("Largest number (optional)").fill("lots")
    async with _saves(page):
        await number.get_by_label("Largest number (optional)").press("Tab")
    await expect(number.locator(".save-state")).to_contain_text("Not saved")
    await expect(number.get_by_text("Enter a number.")).to_be_visible()
    await _edit(page, number, "Largest number (optional)", "500")
    await expect(number.locator(".save-state__text")).to_have_text("✓ Saved")

    # Reorder: the keyboard way (Move up), then drag and drop.
    async with _saves(page, "/move"):
        await cards["Email"].get_by_role("button", name="↑ Move up").click()
    await expect(page.locator(".qcard").nth(2)).to_contain_text("Email")
    await expect(page.locator("#questions-announce")).to_have_text("Moved “Email” to position 3 of 12.")
    # Focus stays on the button just used, so the keyboard can keep moving the same question.
    await expect(cards["Email"].get_by_role("button", name="↑ Move up")).to_be_focused()
    # Both cards must be on screen for the mouse to carry one onto the other.
    await page.set_viewport_size({"width": 1280, "height": 2400})
    await page.evaluate("window.scrollTo(0, 0)")
    async with _saves(page, "/reorder"):
        await cards["Email"].locator(".qcard__handle").drag_to(cards["Your name"].locator(".qcard__handle"))
    await page.set_viewport_size({"width": 1280, "height": 900})
    await expect(page.locator(".qcard").nth(0)).to_contain_text("Email")

    settings = page.locator("#form-settings")
    await settings.get_by_label("Confirmation message").fill("Thanks! We read every answer.")
    async with _saves(page, "/edit/settings"):
        await settings.get_by_role("button", name="Save settings").click()
    await expect(settings.locator(".save-state__text")).to_have_text("✓ Saved")
    await shot(page, "builder")

    # Preview: exactly the respondent's page, without a way to send it.
    await page.get_by_role("link", name="Preview").first.click()
    await expect(page.get_by_role("heading", name="Team survey")).to_be_visible()
    await expect(page.get_by_role("group", name="Tools you use").get_by_label("Notion")).to_be_visible()
    await expect(page.get_by_role("button", name="Submit")).to_be_disabled()
    await shot(page, "preview")
    await page.get_by_role("link", name="← Back to the builder").click()

    async with _saves(page, "/edit/status"):
        await page.get_by_role("button", name="Publish").click()
    await expect(page.locator("#publish")).to_contain_text("Published.")
    await expect(page.locator("#publish .badge")).to_have_text("Open")
    return builder_url


async def _respond(new_context, url: str) -> None:
    other = await (await new_context()).new_page()
    await other.goto(url)
    await expect(other.get_by_role("heading", name="Team survey")).to_be_visible()
    await other.get_by_label("Tell us more").fill("We run a small bakery.")
    await other.get_by_label("How many people are in your team?").fill("0")
    await other.get_by_role("button", name="Submit").click()
    summary = other.locator(".error-summary")
    await expect(summary.get_by_role("link")).to_have_text([
        "Email: This question is required.",
        "Your name: This question is required.",
        "How many people are in your team?: Enter a number of at least 1.",
        "May we contact you?: This question is required.",
    ])
    await expect(other.get_by_label("Tell us more")).to_have_value("We run a small bakery.")

    await other.get_by_label("Email").fill("wanjiru@example.com")
    await other.get_by_label("Your name").fill("=Wanjiru")
    await other.get_by_label("How many people are in your team?").fill("12")
    await other.get_by_label("Phone").fill("+254 712 345678")
    await other.get_by_label("Website").fill("bakery.example.com")
    await other.get_by_role("group", name="Favourite colour").get_by_label("Green").check()
    await other.get_by_role("group", name="Tools you use").get_by_label("Slack").check()
    await other.get_by_role("group", name="Tools you use").get_by_label("Notion").check()
    await other.get_by_label("Country").select_option("Kenya")
    await other.get_by_label("Start date").fill("2026-03-02")
    await other.get_by_role("group", name="How likely are you to recommend us?").get_by_label("4").check()
    await other.get_by_role("group", name="May we contact you?").get_by_label("Yes").check()
    await other.get_by_role("button", name="Submit").click()
    await expect(other.get_by_role("heading", name="Thank you!")).to_be_visible()
    await expect(other.get_by_text("Thanks! We read every answer.")).to_be_visible()


async def test_the_whole_journey(page, new_context, signup, shot, live_server):
    await signup(page)
    builder_url = await _build(page, shot)
    share = await page.locator("#share-link").input_value()
    assert re.fullmatch(re.escape(live_server.url) + r"/f/[A-Za-z0-9_-]{12}", share)
    await _respond(new_context, share)

    # The owner reads it: table, detail, summary.
    await page.get_by_role("link", name="Responses", exact=True).click()
    table = page.locator("table.results-table")
    await expect(table.locator("tbody tr")).to_have_count(1)
    headers = await table.locator("thead th").all_text_contents()
    assert [h.strip() for h in headers[1:-1]] == [
        "Email", "Your name", "Tell us more", "How many people are in your team?", "Phone", "Website",
        "Favourite colour", "Tools you use", "Country", "Start date", "How likely are you to recommend us?",
        "May we contact you?"]
    cells = [c.strip() for c in await table.locator("tbody td").all_inner_texts()][1:-1]
    assert cells == ["wanjiru@example.com", "=Wanjiru", "We run a small bakery.", "12", "+254712345678",
                     "https://bakery.example.com", "Green", "Slack, Notion", "Kenya", "2026-03-02", "4", "Yes"]
    await shot(page, "responses")

    await table.get_by_role("link", name=re.compile("^View")).click()
    await expect(page.get_by_role("heading", name=re.compile("^Response from"))).to_be_visible()
    await expect(page.locator("dl.answer-list")).to_contain_text("Slack, Notion")
    await shot(page, "response-detail")

    await page.get_by_role("link", name="Summary", exact=True).click()
    tools = page.locator("section.summary-card", has=page.get_by_role("heading", name="Tools you use"))
    await expect(tools.get_by_role("img", name="Answers to “Tools you use”")).to_be_visible()
    await expect(tools.locator("svg")).to_contain_text("Slack")
    await expect(tools.locator("svg")).to_contain_text("1 · 100%")
    team = page.locator("section.summary-card", has=page.get_by_role("heading", name="How many people"))
    await expect(team.locator("dl.stats")).to_contain_text("Median")
    await expect(team.locator("dl.stats")).to_contain_text("12")
    await shot(page, "summary")

    # CSV export: what a spreadsheet would open.
    await page.get_by_role("link", name="Responses", exact=True).click()
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await info.value
    assert download.suggested_filename.startswith("team-survey-responses-")
    data = Path(await download.path()).read_bytes()  # noqa: ASYNC240 (a small local file)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:5] == ["Response ID", "Submitted at", "Updated at", "Status", "Email"]
    assert len(rows) == 2
    assert rows[1][3:] == ["complete", "wanjiru@example.com", "'=Wanjiru", "We run a small bakery.", "12",
                           "'+254712345678", "https://bakery.example.com", "Green", "Slack, Notion", "Kenya",
                           "2026-03-02", "4", "Yes"]

    # A state-changing request without the CSRF token is refused, even with the session cookie.
    form_path = builder_url.split(live_server.url, 1)[1].removesuffix("/edit")
    status = await page.evaluate(
        "path => fetch(path, {method: 'POST', body: new URLSearchParams({action: 'close'})}).then(r => r.status)",
        f"{form_path}/edit/status")
    assert status == 403
    await page.reload()
    await expect(page.locator("#form-heading")).to_have_text("Team survey")

    # Another person gets 404 on my builder and my results.
    stranger = await (await new_context()).new_page()
    await signup(stranger)
    for path in ("/edit", "/responses", "/summary", "/responses.csv"):
        response = await stranger.goto(f"{form_path}{path}")
        assert response.status == 404, path
        await expect(stranger.get_by_role("heading", name=re.compile("not found", re.I))).to_be_visible()
        await expect(stranger.locator("main")).not_to_contain_text("Team survey")
