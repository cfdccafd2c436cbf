"""``make audit``: pip-audit over the project's environment with a dated allow-list.

pip-audit asks a vulnerability service (PyPI's JSON API by default, or OSV) about every
installed distribution. This wrapper adds the project's policy on top of it:

* the allow-list ``.pip-audit-allowlist`` holds ``<vulnerability id> <package> <expires
  YYYY-MM-DD> <reason>`` lines; a listed id is ignored until it expires, and an expired entry
  fails the audit (someone must re-decide, with a new date and reason);
* a known vulnerability that is not allow-listed fails the audit (exit 1);
* a dependency the service could not answer for counts as *not audited*: if any are, the audit
  says how many and exits 3 ("incomplete"), never a silent "no known vulnerabilities". CI treats
  3 as a warning when the vulnerability service is unreachable from its network, and 1 as a
  failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from scorestream.errors import ConfigError

ALLOWLIST = Path(".pip-audit-allowlist")
EXIT_OK, EXIT_VULNERABLE, EXIT_INCOMPLETE = 0, 1, 3


@dataclass(frozen=True, slots=True)
class Allowed:
    vuln_id: str
    package: str
    expires: date
    reason: str


def parse_allowlist(text: str, *, origin: str = str(ALLOWLIST)) -> list[Allowed]:
    entries = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(maxsplit=3)
        try:
            vuln_id, package, expires, reason = parts
            entries.append(Allowed(vuln_id, package.lower(), date.fromisoformat(expires), reason))
        except ValueError:
            raise ConfigError(
                f"{origin} line {n}: expected '<vuln id> <package> <YYYY-MM-DD> <reason>'"
            ) from None
    return entries


@dataclass(frozen=True, slots=True)
class Report:
    audited: int
    skipped: list[str]
    vulnerable: list[str]
    ignored: list[str]
    expired: list[str]

    def exit_code(self) -> int:
        if self.vulnerable or self.expired:
            return EXIT_VULNERABLE
        return EXIT_INCOMPLETE if self.skipped else EXIT_OK

    def lines(self) -> list[str]:
        out = [f"audited {self.audited} distribution(s), {len(self.skipped)} not audited"]
        out += [f"VULNERABLE {v}" for v in self.vulnerable]
        out += [f"allow-list entry EXPIRED: {e}" for e in self.expired]
        out += [f"allow-listed {i}" for i in self.ignored]
        if self.skipped:
            out.append(
                "INCOMPLETE: the vulnerability service did not answer for "
                f"{len(self.skipped)} distribution(s), e.g. {self.skipped[0]}"
            )
        elif not (self.vulnerable or self.expired):
            out.append("no known vulnerabilities")
        return out


def evaluate(result: dict[str, Any], allowed: list[Allowed], today: date) -> Report:
    """The policy over pip-audit's JSON (``-f json``), without the allow-list's ignores."""
    active = {a.vuln_id: a for a in allowed if a.expires >= today}
    expired = [
        f"{a.vuln_id} ({a.package}, expired {a.expires})" for a in allowed if a.expires < today
    ]
    audited, skipped, vulnerable, ignored = 0, [], [], []
    deps = result.get("dependencies", [])
    if not isinstance(deps, list):
        raise ConfigError("pip-audit's report has no dependency list")
    for dep in deps:
        name, version = dep.get("name", "?"), dep.get("version", "?")
        if "skip_reason" in dep:
            if "editable" not in dep["skip_reason"]:
                skipped.append(f"{name}: {dep['skip_reason']}")
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            label = f"{name} {version}: {vuln['id']} (fixed in {vuln.get('fix_versions') or '-'})"
            hit = next((active[i] for i in ids if i in active), None)
            if hit is not None and hit.package == name.lower():
                ignored.append(f"{label}: {hit.reason} (until {hit.expires})")
            else:
                vulnerable.append(label)
    return Report(audited, skipped, vulnerable, ignored, expired)


def run_pip_audit(extra: list[str]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "pip_audit",
        "--format",
        "json",
        "--skip-editable",
        "--progress-spinner",
        "off",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if not proc.stdout.strip():
        raise ConfigError(f"pip-audit produced no report (exit {proc.returncode}): {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scorestream.dev.dependency_audit")
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    parser.add_argument("--service", choices=("pypi", "osv"), default="pypi")
    args = parser.parse_args(argv)
    text = args.allowlist.read_text(encoding="utf-8") if args.allowlist.exists() else ""
    allowed = parse_allowlist(text, origin=str(args.allowlist))
    report = evaluate(
        run_pip_audit(["--vulnerability-service", args.service]), allowed, date.today()
    )
    for line in report.lines():
        sys.stdout.write(f"pip-audit: {line}\n")
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
