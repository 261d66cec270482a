#!/usr/bin/env python3
"""Drives the review dashboard in headless Chromium with Playwright: signs in through the form,
loads every page and checks what it shows, promotes a model through its form, signs out, and
checks that the admin token never appears in location.href, a link, a form action or a page.
Usage: browser-test.py BASE_URL TOKEN GENERATION SCREENSHOT_FOLDER   (exit 0 only if every check passes)"""
import os
import re
import sys

from playwright.sync_api import sync_playwright

base, token, generation, shots = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), sys.argv[4]
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
results = []


def check(name, passed, detail=""):
    results.append(passed)
    print(f"{'ok  ' if passed else 'FAIL'} {name}{': ' + detail if detail and not passed else ''}")


def token_leaks(page):
    """Where the token shows up in the URL, links, form actions or the page's text."""
    places = []
    if token in page.evaluate("location.href"):
        places.append("location.href")
    urls = page.evaluate("""() => [...document.querySelectorAll('a[href]')].map(a => a.href)
                               .concat([...document.querySelectorAll('form')].map(f => f.action))""")
    places += [f"url {u}" for u in urls if token in u]
    if token in page.content():
        places.append("page content")
    return places


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 1600})

    page.goto(base + "/")
    check("an anonymous visit goes to the sign-in form", page.url.endswith("/login"), page.url)
    page.fill("input[name=token]", "not-the-token-0123456789")
    page.click("button")
    check("a wrong token is refused", "not the admin token" in page.content())
    page.fill("input[name=token]", token)
    page.click("button")
    check("signing in lands on the overview", page.url == base + "/", page.url)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies.get("duet_session", {})
    check("the session cookie is HttpOnly and SameSite=Strict",
          session.get("httpOnly") is True and session.get("sameSite") == "Strict", str(session))
    check("the cookie does not hold the token", token not in session.get("value", ""))

    pages = [("", f'id="generation">{generation}<'), ("models", "candidate-als-48"), ("history", "rehearsing the runbook"),
             ("evaluations", "ndcg@10"), ("experiments", "broken-treatment"), ("experiments/als-48-vs-8", "Recommendation: ship"),
             ("experiments/broken-treatment", "served by fallback"), ("decisions", "demo-reviewer"), ("incidents", "Incidents")]
    for path, expected in pages:
        page.goto(f"{base}/{path}")
        name = path.replace("/", "_") or "overview"
        page.screenshot(path=os.path.join(shots, f"{name}.png"), full_page=True)
        check(f"/{path} shows {expected!r}", expected in page.content())
        leaks = token_leaks(page)
        check(f"/{path} keeps the token out of its URL, links and text", not leaks, ", ".join(leaks))

    # Promote through the form: the first model row that offers one.
    page.goto(base + "/models")
    form = page.locator("form[action='/actions/promote']").first
    model = form.locator("input[name=model]").get_attribute("value")
    form.locator("input[name=reason]").fill("browser test: promote through the form")
    form.locator("button").click()
    text = page.content()
    promoted = re.search(r"generation (\d+): production is now", text)
    check("promote through the form succeeds", promoted is not None and int(promoted.group(1)) == generation + 1, text[:400])
    check("the result page keeps the token out", not token_leaks(page))
    page.goto(base + "/history")
    check("history records the promotion and its reason", "browser test: promote through the form" in page.content() and model[:12] in page.content())
    page.goto(base + "/")
    check("the overview shows the new generation", f'id="generation">{generation + 1}<' in page.content())

    page.click("nav form button")  # log out
    check("signing out returns to the sign-in form", page.url.endswith("/login"), page.url)
    page.goto(base + "/models")
    check("after signing out, pages need a new sign-in", page.url.endswith("/login"), page.url)
    browser.close()

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
