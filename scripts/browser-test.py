#!/usr/bin/env python3
"""Drives the review dashboard in headless Chromium with Playwright: signs in through the form,
loads every page and checks what it shows, reviews an experiment as two people (a comment, an
objection that blocks the decision until its author resolves it, two approvals), decides it,
promotes a model through its form, signs out, and checks that no token ever appears in
location.href, a link, a form action or a page.
Usage: browser-test.py BASE_URL TOKEN GENERATION SCREENSHOT_FOLDER RITA_TOKEN SAM_TOKEN
(exit 0 only if every check passes)"""
import os
import re
import sys

from playwright.sync_api import sync_playwright

base, token, generation, shots = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3]), sys.argv[4]
people = {"rita": sys.argv[5], "sam": sys.argv[6]}
secrets = [token, *people.values()]
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
results = []


def check(name, passed, detail=""):
    results.append(passed)
    print(f"{'ok  ' if passed else 'FAIL'} {name}{': ' + detail if detail and not passed else ''}")


def token_leaks(page):
    """Where the token shows up in the URL, links, form actions or the page's text."""
    places = []
    for secret in secrets:
        if secret in page.evaluate("location.href"):
            places.append("location.href")
        urls = page.evaluate("""() => [...document.querySelectorAll('a[href]')].map(a => a.href)
                                   .concat([...document.querySelectorAll('form')].map(f => f.action))""")
        places += [f"url {u}" for u in urls if secret in u]
        if secret in page.content():
            places.append("page content")
    return places


def sign_in(page, name, secret):
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=token]", secret)
    page.click("form[action='/login'] button")
    return page.url == base + "/" and f'id="who">{name}<' in page.content()


def sign_out(page):
    page.goto(base + "/")  # result pages have no navigation bar
    page.click("nav form button")
    return page.url.endswith("/login")


def review_form(page, kind):
    return page.locator(f"form[action='/actions/review']:has(input[name=kind][value={kind}])").first


def result_text(page):
    return page.locator("body").inner_text()


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page(viewport={"width": 1280, "height": 1600})

    page.goto(base + "/")
    check("an anonymous visit goes to the sign-in form", page.url.endswith("/login"), page.url)
    page.fill("input[name=token]", "not-the-token-0123456789")
    page.click("button")
    check("a wrong token is refused", "do not match" in page.content())
    page.fill("input[name=token]", token)
    page.click("button")
    check("signing in lands on the overview", page.url == base + "/", page.url)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies.get("duet_session", {})
    check("the session cookie is HttpOnly and SameSite=Strict",
          session.get("httpOnly") is True and session.get("sameSite") == "Strict", str(session))
    check("the cookie does not hold the token", token not in session.get("value", ""))

    pages = [("", f'id="generation">{generation}<'), ("", 'id="last-hour">Last hour: <b>'), ("", "launches-2026</a></td><td>holdout"),
             ("", "broken-treatment</a>: stopped, 0 of 2 approvals"), ("models", "candidate-als-48"), ("history", "rehearsing the runbook"),
             ("evaluations", "ndcg@10"), ("experiments", "broken-treatment"), ("experiments", "launches-2026</a></td><td>holdout"), ("experiments/als-48-vs-8", "Recommendation: ship"),
             ("experiments/broken-treatment", "served by fallback"), ("decisions", "bob, chen"), ("incidents", "Incidents"),
             ("memory", 'id="offline-online"'), ("memory?owner=recs&metric=plays_per_user", "launches-2026")]
    for path, expected in pages:
        page.goto(f"{base}/{path}")
        name = path.replace("/", "_") or "overview"
        page.screenshot(path=os.path.join(shots, f"{name}.png"), full_page=True)
        check(f"/{path} shows {expected!r}", expected in page.content())
        leaks = token_leaks(page)
        check(f"/{path} keeps the token out of its URL, links and text", not leaks, ", ".join(leaks))

    # The memory's JSON: the demo's experiments, offline and online numbers side by side.
    memory = page.request.get(base + "/experiments.json").json()
    check("/experiments.json is the memory's JSON", memory == page.request.get(base + "/memory.json").json())
    shipped = next((e for e in memory if e["id"] == "als-48-vs-8"), {})
    check("/experiments.json lists the demo's experiments and holdout",
          {e["id"] for e in memory} >= {"als-48-vs-8", "broken-treatment", "launches-2026"}, str([e["id"] for e in memory]))
    check("/experiments.json sets the offline delta beside the online lift",
          any(d["metric"].startswith("ndcg@") for d in shipped.get("offline", []))
          and any(l["metric"] == "plays_per_user" and l["lower"] <= l["lift"] <= l["upper"] for l in shipped.get("online", []))
          and shipped.get("decision", {}).get("approvers") == ["bob", "chen"], str(shipped)[:400])
    holdout = next((e for e in memory if e["id"] == "launches-2026"), {})
    check("the holdout's cumulative lift is positive", any(l["metric"] == "plays_per_user" and l["lower"] > 0 for l in holdout.get("online", [])),
          str(holdout.get("online"))[:300])

    page.click("nav form button")  # log out
    check("signing out returns to the sign-in form", page.url.endswith("/login"), page.url)
    page.goto(base + "/models")
    check("after signing out, pages need a new sign-in", page.url.endswith("/login"), page.url)
    check("a person's token under another name is refused", not sign_in(page, "sam", people["rita"]))

    # The review of broken-treatment by two people.
    experiment = base + "/experiments/broken-treatment"
    check("rita signs in with her own token", sign_in(page, "rita", people["rita"]))
    page.goto(experiment)
    review_form(page, "comment").locator("input[name=text]").fill("Was the fallback share <b>flagged</b> early enough?")
    review_form(page, "comment").locator("button").click()
    check("rita's comment is recorded under her name", "comment #" in page.content() and "by rita" in page.content(), result_text(page)[:300])
    page.goto(experiment)
    check("the thread shows the comment, escaped", "rita</b> commented" in page.content() and "&lt;b&gt;flagged&lt;/b&gt;" in page.content())
    review_form(page, "objection").locator("input[name=text]").fill("The treatment never served; do not read its metrics")
    review_form(page, "objection").locator("button").click()
    page.goto(experiment)
    objection = re.search(r'id="objection-(\d+)"', page.content())
    check("the objection is listed as open", objection is not None and "<b class=\"no-ship\">open</b>" in page.content())
    review_form(page, "approval").locator("button").click()
    page.goto(experiment)
    check("rita's approval counts (1 of 2)", "Approved by: rita (1 of 2)" in page.content(), result_text(page)[-600:])
    check("rita signs out", sign_out(page))

    check("sam signs in with his own token", sign_in(page, "sam", people["sam"]))
    page.goto(experiment)
    check("sam may overrule rita's objection but not resolve it",
          review_form(page, "overrule").count() == 1 and review_form(page, "resolution").count() == 0)
    review_form(page, "approval").locator("button").click()
    page.goto(experiment)
    check("two approvals (2 of 2)", "Approved by: rita, sam (2 of 2)" in page.content())
    decide = page.locator("form[action='/actions/decide']")
    decide.locator("input[name=reason]").fill("browser test: the treatment never served")
    decide.locator("button").click()
    check("a decision with an open objection is refused, naming it",
          "open objection" in page.content() and "by rita" in page.content(), result_text(page)[:400])
    page.screenshot(path=os.path.join(shots, "refused-decision.png"), full_page=True)
    check("sam signs out", sign_out(page))

    check("rita signs in again", sign_in(page, "rita", people["rita"]))
    page.goto(experiment)
    review_form(page, "resolution").locator("input[name=text]").fill("agreed: abandon, no metrics read")
    review_form(page, "resolution").locator("button").click()
    page.goto(experiment)
    check("the objection is resolved", objection is not None and re.search(rf'id="objection-{objection.group(1)}">.*?resolved', page.content()) is not None)
    page.screenshot(path=os.path.join(shots, "review.png"), full_page=True)
    decide = page.locator("form[action='/actions/decide']")
    decide.locator("input[name=reason]").fill("browser test: the treatment never served")
    decide.locator("button").click()
    check("the decision is recorded with its approvers", re.search(r"decision #\d+ recorded: .* by rita, approved by rita, sam", result_text(page)) is not None,
          result_text(page)[:400])
    page.goto(experiment)
    check("the experiment is decided", 'id="review-status">decided<' in page.content())
    page.goto(base + "/decisions")
    check("the decisions page lists the approvers", "rita, sam" in page.content())

    # Promote through the form, as rita: the history names her.
    page.goto(base + "/models")
    # The model the demo's experiment shipped (and then rolled back): its evidence still holds.
    form = page.locator("tr:has-text('candidate-als-48') form[action='/actions/promote']").first
    model = form.locator("input[name=model]").get_attribute("value")
    form.locator("input[name=reason]").fill("browser test: promote as rita")
    form.locator("button").click()
    promoted = re.search(r"generation (\d+): production is now", page.content())
    check("rita's promotion through the form succeeds", promoted is not None and int(promoted.group(1)) == generation + 1, result_text(page)[:400])
    page.goto(base + "/history")
    check("history records the promotion, its reason and rita",
          "browser test: promote as rita" in page.content() and "<td>rita</td>" in page.content() and model[:12] in page.content())
    page.goto(base + "/")
    check("the overview shows the new generation", f'id="generation">{generation + 1}<' in page.content())
    leaks = token_leaks(page)
    check("no sign-in token in the URL, links or text", not leaks, ", ".join(leaks))
    check("rita signs out", sign_out(page))
    browser.close()

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
