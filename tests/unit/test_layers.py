"""The layers of docs/architecture (design.md): ``schemas`` < kernel (``scorestream``) < services
(``producers``, ``consumers``, ``inference_worker``, ``pipelines``) < tools (``scorestream.cli``,
``.dev``, ``.chaos``, ``.deploy``, ``.ops``, ``.bench``) < ``bench`` / ``tests``.

Every import in the shipped packages — at the top of a module or inside a function, where an
upward import would otherwise hide — points to its own layer or a lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("schemas", "scorestream", "producers", "consumers", "inference_worker", "pipelines")
TOOLS = (
    "scorestream.cli",
    "scorestream.__main__",
    "scorestream.bench",
    "scorestream.dev",
    "scorestream.chaos",
    "scorestream.deploy",
    "scorestream.ops",
)
SERVICES = ("producers", "consumers", "inference_worker", "pipelines")
BASE = ("scorestream.errors",)
"""The error tree: one root exception every layer raises under (it imports nothing)."""
ALLOWED = {
    ("scorestream.bench", "bench.suite"): "`scorestream bench` runs the benchmark suite of a "
    "checkout (bench/ is not shipped: the command says so outside one)",
}
LAYERS = ("schemas", "kernel", "services", "tools", "bench/tests")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer(module: str) -> int | None:
    top = module.split(".", maxsplit=1)[0]
    if module.startswith("schemas") or _within(module, BASE):
        return 0
    if top == "scorestream":
        return 3 if _within(module, TOOLS) else 1
    if top in SERVICES:
        return 2
    if top in ("bench", "tests"):
        return 4
    return None  # third-party or the standard library


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def upward_imports() -> list[str]:
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module_of(path)
            mine = layer(module)
            assert mine is not None
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module]
                else:
                    continue
                for target in targets:
                    theirs = layer(target)
                    if theirs is None or theirs <= mine or (module, target) in ALLOWED:
                        continue
                    found.append(
                        f"{path.relative_to(ROOT)}:{node.lineno}: {module} ({LAYERS[mine]}) "
                        f"imports {target} ({LAYERS[theirs]})"
                    )
    return found


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports() == []


def test_the_error_tree_imports_nothing_of_ours() -> None:
    tree = ast.parse((ROOT / "scorestream" / "errors.py").read_text(encoding="utf-8"))
    ours = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and layer(node.module) is not None
    ]
    assert ours == []
