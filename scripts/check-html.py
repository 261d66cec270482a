#!/usr/bin/env python3
"""Parses HTML files with Python's HTML parser and fails if any could run script: a script, iframe,
object, embed or base element, an event-handler attribute (on*), or a javascript:/vbscript:/data:
URL in a URL attribute. Used by the hostile-values rendering test.
Usage: check-html.py FILE_OR_FOLDER...   (exit 0 clean, 1 with problems listed, 2 on bad usage)"""
import html.parser
import pathlib
import re
import sys

FORBIDDEN_ELEMENTS = {"script", "iframe", "object", "embed", "base", "frame", "frameset", "applet"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "poster", "background", "ping"}
DANGEROUS_SCHEME = re.compile(r"^(javascript|vbscript|data):", re.IGNORECASE)


class Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems, self.elements = [], 0

    def handle_starttag(self, tag, attrs):
        self.elements += 1
        line = self.getpos()[0]
        if tag in FORBIDDEN_ELEMENTS:
            self.problems.append(f"line {line}: <{tag}> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"line {line}: event handler attribute {name}= on <{tag}>")
            if name in URL_ATTRIBUTES and value is not None:
                # Browsers ignore whitespace and control characters inside a scheme.
                squeezed = re.sub(r"[\x00-\x20]", "", value)
                if DANGEROUS_SCHEME.match(squeezed):
                    self.problems.append(f"line {line}: {name}={value[:60]!r} on <{tag}>")
            if tag == "meta" and name == "http-equiv" and (value or "").lower() == "refresh":
                self.problems.append(f"line {line}: meta refresh")

    handle_startendtag = handle_starttag


def main(arguments):
    if not arguments:
        print(__doc__)
        return 2
    files = []
    for argument in arguments:
        path = pathlib.Path(argument)
        files += sorted(path.rglob("*.html")) if path.is_dir() else [path]
    if not files:
        print("check-html: no HTML files found")
        return 2
    total_problems, total_elements = 0, 0
    for file in files:
        checker = Checker()
        checker.feed(file.read_text(encoding="utf-8"))
        checker.close()
        total_elements += checker.elements
        for problem in checker.problems:
            print(f"{file}: {problem}")
        total_problems += len(checker.problems)
    print(f"check-html: {len(files)} files, {total_elements} elements, {total_problems} problems")
    return 1 if total_problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
