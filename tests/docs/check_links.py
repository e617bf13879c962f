#!/usr/bin/env python3
"""Check the repository's in-repo Markdown links (Python 3 standard library only).

For README.md, CONTRIBUTING.md and every docs/**/*.md (the repository root is this
script's ../..), every link or image `[text](target)` (and reference definition
`[label]: target`) whose target is relative — no URL scheme such as `https:` or
`mailto:` — must name a file or directory that exists, relative to the Markdown file's
own directory (a leading `/`: relative to the repository root). A `#fragment`, on a link
to a Markdown file or on a same-file `#fragment` link, must be the GitHub anchor of one
of that file's headings: lowercased, punctuation removed but for `-` and `_`, each space
a `-`, and a repeated heading suffixed `-1`, `-2`, … as GitHub does. Links inside fenced
code blocks and inline code spans are not links and are ignored.

Prints `link check ok: <file>` for each file whose links all resolve, one
`BROKEN <file>:<line>: <target> (<why>)` per broken link, and last
`docs-links: N passed, M failed` (N links resolved, M broken). Exit status 1 when M > 0.

    python3 tests/docs/check_links.py            # the default files
    python3 tests/docs/check_links.py FILE.md …  # only these (paths relative to the cwd)
"""
import html
import os
import re
import sys
import unicodedata
from urllib.parse import unquote

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# [text](target "title") and ![alt](target): the target, bare or in <…>, then an optional title.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*\]"
    r"\(\s*(<[^<>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?\s*\)"
)
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^<>\n]*>|\S+)", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def default_files():
    files = ["README.md", "CONTRIBUTING.md"]
    docs = os.path.join(ROOT, "docs")
    found = []
    for dirpath, dirnames, filenames in os.walk(docs):
        dirnames.sort()
        for name in filenames:
            if name.endswith(".md"):
                found.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    return files + sorted(found)


def blank_fences(text):
    """The text with every line of a fenced code block (fences included) emptied, so that
    line numbers are kept."""
    out, fence = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                out.append("")
                continue
            out.append(line)
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and line.strip() == m.group(1):
                fence = None
            out.append("")
    return "\n".join(out)


def blank_code_spans(text):
    """The text with every inline code span replaced by spaces (newlines kept). A span is a
    run of n backticks up to the next run of exactly n, within one paragraph."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] == "\\" and i + 1 < n and text[i + 1] == "`":
            out.append(text[i:i + 2])
            i += 2
            continue
        if text[i] != "`":
            out.append(text[i])
            i += 1
            continue
        j = i
        while j < n and text[j] == "`":
            j += 1
        run = j - i
        end = paragraph_end(text, j)
        k, close = j, -1
        while k < end:
            if text[k] == "`":
                m = k
                while m < n and text[m] == "`":
                    m += 1
                if m - k == run:
                    close = k
                    break
                k = m
            else:
                k += 1
        if close < 0:
            out.append(text[i:j])  # an unmatched run is literal backticks
            i = j
            continue
        span_end = close + run
        out.append("".join("\n" if c == "\n" else " " for c in text[i:span_end]))
        i = span_end
    return "".join(out)


PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def paragraph_end(text, start):
    m = PARAGRAPH_BREAK.search(text, start)
    return m.start() if m else len(text)


def heading_text(raw):
    """What GitHub renders of a heading's inline Markdown, as plain text."""
    t = raw
    t = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", t)  # links, images
    t = re.sub(r"<[^>]+>", "", t)  # HTML tags
    t = t.replace("`", "")
    return html.unescape(t)


def slug(text):
    """GitHub's anchor for a heading's text (github-slugger)."""
    out = []
    for c in text.strip().lower():
        if c in "-_ ":
            out.append(c)
        elif unicodedata.category(c)[0] in "LNM":
            out.append(c)
    return "".join(out).replace(" ", "-")


_ANCHORS = {}


def anchors(path):
    """The anchors of a Markdown file's headings, duplicates numbered as GitHub does."""
    if path in _ANCHORS:
        return _ANCHORS[path]
    with open(path, encoding="utf-8") as f:
        lines = blank_fences(f.read()).split("\n")
    headings = []
    for i, line in enumerate(lines):
        m = ATX.match(line)
        if m:
            headings.append(m.group(2) or "")
            continue
        if i > 0 and SETEXT.match(line) and lines[i - 1].strip() \
                and not ATX.match(lines[i - 1]) and not lines[i - 1].lstrip().startswith(("|", "-", "*", ">")):
            headings.append(lines[i - 1].strip())
    seen, result = {}, set()
    for h in headings:
        base = slug(heading_text(h))
        s = base
        while s in seen:
            seen[base] += 1
            s = f"{base}-{seen[base]}"
        seen[s] = 0
        result.add(s)
    for line in lines:
        for m in HTML_ANCHOR.finditer(line):
            result.add(m.group(1))
    _ANCHORS[path] = result
    return result


def links(text):
    """(line, target) of every link, image and reference definition outside code."""
    masked = blank_code_spans(blank_fences(text))
    found = []
    for pattern in (INLINE_LINK, REF_DEF):
        for m in pattern.finditer(masked):
            target = m.group(1)
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            line = masked.count("\n", 0, m.start(1)) + 1
            found.append((line, target))
    return sorted(found)


def check(md_rel, target):
    """None when target resolves from the Markdown file md_rel, else why not."""
    if not target:
        return "empty target"
    path_part, _, fragment = target.partition("#")
    md_abs = os.path.join(ROOT, md_rel)
    if path_part:
        path_part = unquote(path_part)
        if path_part.startswith("/"):
            dest = os.path.normpath(os.path.join(ROOT, path_part.lstrip("/")))
        else:
            dest = os.path.normpath(os.path.join(os.path.dirname(md_abs), path_part))
        if not os.path.exists(dest):
            return "no such file or directory: " + os.path.relpath(dest, ROOT)
        if os.path.relpath(dest, ROOT).startswith(".."):
            return "outside the repository"
    else:
        dest = md_abs
    if fragment:
        if os.path.isdir(dest) or not dest.endswith(".md"):
            return None  # anchors of other kinds of files are not checked
        if unquote(fragment) not in anchors(dest):
            return f"no heading with anchor #{fragment} in {os.path.relpath(dest, ROOT)}"
    return None


def main(argv):
    if argv:
        files = [os.path.relpath(os.path.abspath(a), ROOT) for a in argv]
    else:
        files = default_files()
    passed = failed = 0
    for rel in files:
        rel_posix = rel.replace(os.sep, "/")
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            print(f"BROKEN {rel_posix}:0: {rel_posix} (the file to check does not exist)")
            failed += 1
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        broken = 0
        for line, target in links(text):
            if SCHEME.match(target):
                continue  # http:, https:, mailto: and other absolute URLs
            why = check(rel, target)
            if why is None:
                passed += 1
            else:
                print(f"BROKEN {rel_posix}:{line}: {target} ({why})")
                broken += 1
        failed += broken
        if not broken:
            print(f"link check ok: {rel_posix}")
    print(f"docs-links: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
