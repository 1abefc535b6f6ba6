"""The README and the documentation site: every link of the README resolves,
the site builds with ``mkdocs build --strict`` (a broken link or anchor, or a
page left out of the nav, fails it), and CI runs the README's test command.

The build needs MkDocs (the ``docs`` extra); without it that test skips,
unless NN_GPU_REQUIRE_DOCS=1 (as CI sets it), where it fails instead."""

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: The README is the front page: install, data, first run, API, commands.
#: The depth lives in docs/.
README_MAX_LINES = 220


def prose(markdown):
    """``markdown`` without fenced code blocks and HTML comments: the text
    whose links a reader can follow."""
    markdown = re.sub(r"<!--.*?-->", "", markdown, flags=re.S)
    return re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)


def link_targets(markdown):
    """The targets of the links and images of ``markdown``'s prose."""
    text = prose(markdown)
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    targets += re.findall(r"<img\s[^>]*src=\"([^\"]+)\"", text)
    return targets


def headings(markdown):
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(markdown), re.M)]


def plain(heading):
    """A heading's text as rendered: no code marks, links reduced to their text."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return heading.replace("`", "").replace("*", "")


def github_slug(heading):
    """GitHub's anchor for a heading (how the README's links are followed there)."""
    text = re.sub(r"[^\w\- ]", "", plain(heading).lower())
    return text.replace(" ", "-")


def mkdocs_slug(heading):
    """Python-Markdown's anchor for a heading (how MkDocs names it)."""
    text = unicodedata.normalize("NFKD", plain(heading)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown):
    found = set()
    for heading in headings(markdown):
        found |= {github_slug(heading), mkdocs_slug(heading)}
    return found


def broken_links(markdown, base):
    """The relative links of ``markdown`` (a file in ``base``) whose file or
    anchor does not exist."""
    broken = []
    for target in link_targets(markdown):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else None
        if file is not None and not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
            continue
        if anchor:
            text = markdown if file is None else file.read_text(encoding="utf-8")
            if file is not None and file.suffix != ".md":
                continue
            if anchor not in anchors(text):
                broken.append(f"{target}: no heading with the anchor #{anchor}")
    return broken


def test_link_checker_finds_what_is_broken(tmp_path):
    (tmp_path / "page.md").write_text("# A page\n\n## GPU: not measured yet\n", encoding="utf-8")
    text = ("[ok](page.md) [ok](page.md#gpu-not-measured-yet) ![ok](page.md) [ok](#here)\n"
            "[web](https://example.org/x) [bad](missing.md) [bad](page.md#nowhere)\n"
            "<!-- [commented out](missing-too.png) -->\n"
            "```\n[in code](missing-three.md)\n```\n# Here\n")
    assert broken_links(text, tmp_path) == [
        f"missing.md: no file {tmp_path / 'missing.md'}",
        "page.md#nowhere: no heading with the anchor #nowhere"]


def test_readme_links_resolve():
    assert broken_links(README.read_text(encoding="utf-8"), ROOT) == []


def test_readme_links_into_the_docs():
    targets = link_targets(README.read_text(encoding="utf-8"))
    pages = {target.partition("#")[0] for target in targets if target.startswith("docs/")}
    assert {"docs/performance.md", "docs/robustness.md", "docs/sweeps.md", "docs/conv.md",
            "docs/backends.md", "docs/contributing.md", "docs/reading.md"} <= pages


def test_readme_stays_a_front_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; keep it a front page (at most {README_MAX_LINES}) "
        "and put the depth into a page under docs/")


def nav_pages():
    """The pages mkdocs.yml's nav names (read as text: no YAML parser needed)."""
    return set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?([\w./-]+\.md)\s*$",
                          (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M))


def test_every_page_is_in_the_nav():
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert nav_pages() == pages


def test_ci_runs_the_readme_test_command():
    """.ci/run's last command is the command under the README's testing heading."""
    readme = README.read_text(encoding="utf-8")
    section = re.search(r"^## Contributing and testing\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert section, "README.md lost its '## Contributing and testing' heading"
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)
    commands = [line for line in block.group(1).splitlines() if line.startswith("python -m pytest")]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert commands == [ci[-1]]


def test_docs_build_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        reason = "MkDocs is not installed (pip install -e '.[docs]')"
        if os.environ.get("NN_GPU_REQUIRE_DOCS") == "1":
            pytest.fail(f"NN_GPU_REQUIRE_DOCS=1, but {reason}", pytrace=False)
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
