"""Sections of docs/performance.md, each owned by the script that writes it.

Several benchmark scripts write into the one report. Each owns the text between its markers

    <!-- begin OWNER -->
    ...
    <!-- end OWNER -->

(HTML comments, invisible when the Markdown is rendered) and replaces only that, leaving the rest
of the file as it was. A section not in the file yet is appended at the end. A file without any
marker is a report written whole by scripts/bench_peers.py before sections existed: it becomes
that script's section first.
"""
import os
import re
import tempfile

LEGACY_OWNER = "bench_peers"
_ANY_MARKER = re.compile(r"<!-- (begin|end) [A-Za-z0-9_.-]+ -->")


def markers(owner):
    return f"<!-- begin {owner} -->", f"<!-- end {owner} -->"


def replace_section(old_text, owner, body):
    """`old_text` (None when there is no file yet) with `owner`'s section holding `body`."""
    begin, end = markers(owner)
    block = f"{begin}\n{body.strip(chr(10))}\n{end}\n"
    if not old_text or not old_text.strip():
        return block
    if not _ANY_MARKER.search(old_text):
        old_text = replace_section(None, LEGACY_OWNER, old_text)
        if owner == LEGACY_OWNER:
            return block
    i = old_text.find(begin)
    j = old_text.find(end, i + len(begin)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        rest = old_text[j + len(end):].lstrip("\n")
        return old_text[:i] + block + ("\n" + rest if rest else "")
    if i >= 0:
        raise ValueError(f"{owner}'s section has a begin marker but no end marker")
    return old_text.rstrip("\n") + "\n\n" + block


def write_section(path, owner, body):
    """Replaces `owner`'s section of the file at `path` (atomically: a temporary file in the same
    folder, then a rename)."""
    try:
        with open(path) as fh:
            old = fh.read()
    except FileNotFoundError:
        old = None
    text = replace_section(old, owner, body)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".perf-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


if __name__ == "__main__":
    # Self-check: python3 scripts/perf_doc.py
    legacy = "# Performance\n\nold peers report\n"
    a = replace_section(legacy, "bench_train", "## Training\n\nt1\n")
    assert a.startswith("<!-- begin bench_peers -->\n# Performance") and a.endswith("t1\n<!-- end bench_train -->\n"), a
    b = replace_section(a, "bench_peers", "# Performance\n\nnew peers report\n")
    assert "old peers" not in b and "new peers report" in b and "t1" in b, b
    c = replace_section(b, "bench_train", "## Training\n\nt2\n")
    assert "t1" not in c and "t2" in c and "new peers report" in c and c.index("new peers") < c.index("t2"), c
    assert replace_section(c, "bench_train", "## Training\n\nt2\n") == c
    assert replace_section(legacy, "bench_peers", "# P\n") == "<!-- begin bench_peers -->\n# P\n<!-- end bench_peers -->\n"
    print("ok")
