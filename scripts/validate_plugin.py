"""Check a plugin zip against the QGIS plugin repository's rules; exit 1 listing every problem.

Rules checked: a single top-level folder that is a valid Python identifier, holding __init__.py,
metadata.txt and LICENSE; the required metadata fields, qgisMinimumVersion ≤ 3.22; no compiled or
cache files; size under 25 MB; bandit (if given) reports no high-severity issue in the code.
"""

import configparser
import json
import os
import subprocess
import sys
import tempfile
import zipfile

REQUIRED = ["name", "description", "version", "qgisMinimumVersion", "qgisMaximumVersion", "author", "email",
            "about", "tracker", "repository"]
MAX_BYTES = 25 * 1024 * 1024
# plugins.qgis.org wants working addresses in these; we check the form only, and say so.
ADDRESS_FIELDS = ("tracker", "repository", "homepage")
PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")


def _version_tuple(text):
    return tuple(int(p) for p in text.strip().split(".")[:3] if p.isdigit())


def check_zip(path, notes=None):
    """(problems, top-level folder, size); what is allowed but not yet ready to publish goes
    into `notes`."""
    problems = []
    notes = notes if notes is not None else []
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        problems.append(f"zip is {size / 1e6:.1f} MB, over the 25 MB limit")
    with zipfile.ZipFile(path) as zf:
        if zf.testzip() is not None:
            problems.append("zip is corrupt")
        names = zf.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) != 1:
            problems.append(f"zip must hold exactly one top-level folder, found {sorted(tops)}")
        top = sorted(tops)[0]
        if not top.isidentifier():
            problems.append(f"top-level folder {top!r} is not a valid Python package name")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{top}/{required}" not in names:
                problems.append(f"missing {top}/{required}")
        bad = [n for n in names if n.endswith((".pyc", ".pyo")) or "__pycache__" in n or "/.git" in n
               or "/tests/" in n]
        if bad:
            problems.append(f"zip holds files that must not ship: {bad[:5]}")
        if f"{top}/metadata.txt" in names:
            parser = configparser.ConfigParser()
            parser.read_string(zf.read(f"{top}/metadata.txt").decode("utf-8"))
            meta = parser["general"] if parser.has_section("general") else {}
            for field in REQUIRED:
                if not str(meta.get(field, "")).strip():
                    problems.append(f"metadata.txt lacks '{field}'")
            for field in ADDRESS_FIELDS:
                value = str(meta.get(field, "")).strip()
                if value and not value.startswith(("https://", "http://")):
                    notes.append(f"metadata '{field}' is not a web address ({value!r}): fine for a zip, "
                                 "but plugins.qgis.org will refuse the upload until it is one")
            if any(d in str(meta.get("email", "")) for d in PLACEHOLDER_DOMAINS):
                notes.append(f"metadata 'email' is a placeholder ({meta['email']}): set a real address before uploading")
            if meta.get("qgisMinimumVersion") and _version_tuple(meta["qgisMinimumVersion"]) > (3, 22):
                problems.append("qgisMinimumVersion must be ≤ 3.22 (we test on Debian's QGIS 3.22)")
            if meta.get("icon") and f"{top}/{meta['icon']}" not in names:
                problems.append(f"metadata icon {meta['icon']} is not in the zip")
    return problems, top, size


def run_bandit(folder):
    """bandit's high-severity findings over the extracted package (None when bandit is missing)."""
    try:
        out = subprocess.run([sys.executable, "-m", "bandit", "-r", folder, "-f", "json", "-q"],
                             capture_output=True, text=True)
    except OSError:
        return None
    if not out.stdout.strip():
        return None
    report = json.loads(out.stdout)
    return [r for r in report.get("results", []) if r.get("issue_severity") == "HIGH"], report


def main(path):
    notes = []
    problems, top, size = check_zip(path, notes)
    print(f"{os.path.basename(path)}: {size / 1e6:.2f} MB, top-level folder '{top}'")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp)
        bandit = run_bandit(os.path.join(tmp, top))
        if bandit is None:
            problems.append("bandit is not installed: the security scan did not run")
        else:
            high, report = bandit
            totals = report.get("metrics", {}).get("_totals", {})
            print(f"bandit: {int(totals.get('SEVERITY.HIGH', 0))} high, {int(totals.get('SEVERITY.MEDIUM', 0))} medium, "
                  f"{int(totals.get('SEVERITY.LOW', 0))} low severity findings over {int(totals.get('loc', 0))} lines")
            for r in high:
                problems.append(f"bandit HIGH {r['test_id']} {r['filename'].replace(tmp, '')}:{r['line_number']} {r['issue_text']}")
    print("Qt6 compatibility dry run: QGIS's pyqt5_to_pyqt6 checker is not shipped with Debian's QGIS 3.22; "
          "the plugin imports Qt only through qgis.PyQt.")
    for n in notes:
        print(f"NOTE: {n}")
    for p in problems:
        print(f"PROBLEM: {p}")
    print("valid" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
