"""The shape of the code, checked from its syntax trees: each floor imports only from the floors below it, heavy
libraries stay in their floor, imports inside functions say why they are lazy, and functions stay short.

Floors, bottom to top (docs/architecture.md): the shared base (paths, config, small helpers), data, model, train,
evaluate, store, distributed (Ray), the `trm` command, and the Prefect flows in pipelines/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted([*REPO.glob("trm/**/*.py"), *REPO.glob("pipelines/**/*.py")])

BASE_MODULES = ("trm.paths", "trm.errors", "trm.atomic", "trm.overrides", "trm.markdown", "trm.s3", "trm.config")
FLOOR_ORDER = (
    "base",
    "trm.data",
    "trm.model",
    "trm.train",
    "trm.evaluate",
    "trm.store",
    "trm.solver",
    "trm.distributed",
    "top",
    "pipelines",
)
# Third-party packages that only one floor (and the ones above it, through it) may import.
CONFINED = {"ray": "trm.distributed", "prefect": "pipelines"}
# What the lowest floors may import from outside the standard library and the project.
BASE_THIRD_PARTY = {"pydantic", "yaml"}
MODEL_THIRD_PARTY = {"torch", "pydantic", "safetensors"}
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor_of(module: str) -> int:
    if module in BASE_MODULES or any(module.startswith(m + ".") for m in BASE_MODULES):
        return FLOOR_ORDER.index("base")
    if module == "pipelines" or module.startswith("pipelines."):
        return FLOOR_ORDER.index("pipelines")
    for name in FLOOR_ORDER:
        if module == name or module.startswith(name + "."):
            return FLOOR_ORDER.index(name)
    return FLOOR_ORDER.index("top")  # trm (the package API) and trm.cli


@dataclass(frozen=True)
class Import:
    source: Path
    line: int
    target: str
    in_function: bool
    reason: str  # the '# lazy: ...' comment of an import inside a function, else ''


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(path: Path) -> Iterator[Import]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    module = module_name(path)
    function_lines: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    function_lines.add(node.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, module, path.name == "__init__.py")
            targets = [base]
            if base in ("trm", "pipelines"):  # `from trm import cli` names a submodule
                targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2] if node.lineno > 1 else ""
        reason = next((c.split("lazy:", 1)[1].strip() for c in (here, above) if "# lazy:" in c), "")
        for target in targets:
            yield Import(path, node.lineno, target, node.lineno in function_lines, reason)


ALL_IMPORTS = [imp for path in SOURCES for imp in imports(path)]


def test_sources_were_found() -> None:
    assert len(SOURCES) > 50 and any(i.target.startswith("trm.") for i in ALL_IMPORTS)


def test_no_floor_imports_from_a_floor_above_it() -> None:
    crossings = []
    for imp in ALL_IMPORTS:
        if not imp.target.startswith(("trm", "pipelines")) or imp.target.startswith(("trm_", "pipelines_")):
            continue
        source = module_name(imp.source)
        if floor_of(imp.target) > floor_of(source):
            crossings.append(
                f"{imp.source.relative_to(REPO)}:{imp.line} ({FLOOR_ORDER[floor_of(source)]}) imports "
                f"{imp.target} ({FLOOR_ORDER[floor_of(imp.target)]})"
            )
    assert not crossings, "imports from a floor above:\n" + "\n".join(crossings)


@pytest.mark.parametrize(("package", "home"), sorted(CONFINED.items()))
def test_heavy_frameworks_stay_in_their_floor(package: str, home: str) -> None:
    outside = [
        f"{i.source.relative_to(REPO)}:{i.line}"
        for i in ALL_IMPORTS
        if i.target.split(".")[0] == package and not module_name(i.source).startswith(home)
    ]
    assert not outside, f"{package} imported outside {home}: {outside}"


def _third_party(imp: Import) -> str | None:
    top = imp.target.split(".")[0]
    if top in ("trm", "pipelines", "__future__") or top in STDLIB:
        return None
    return top


STDLIB = {
    "abc",
    "argparse",
    "ast",
    "base64",
    "collections",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "enum",
    "errno",
    "functools",
    "glob",
    "hashlib",
    "heapq",
    "importlib",
    "io",
    "itertools",
    "json",
    "logging",
    "math",
    "os",
    "pathlib",
    "platform",
    "random",
    "re",
    "shutil",
    "signal",
    "socket",
    "string",
    "subprocess",
    "sys",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "types",
    "typing",
    "urllib",
    "uuid",
    "warnings",
    "zlib",
}


def test_the_lowest_floors_stay_light() -> None:
    wrong = []
    for imp in ALL_IMPORTS:
        module, package = module_name(imp.source), _third_party(imp)
        if package is None:
            continue
        if floor_of(module) == 0 and package not in BASE_THIRD_PARTY and not imp.in_function:
            wrong.append(f"{imp.source.relative_to(REPO)}:{imp.line} imports {package}")
        if module.startswith("trm.model") and package not in MODEL_THIRD_PARTY:
            wrong.append(f"{imp.source.relative_to(REPO)}:{imp.line} imports {package}")
    assert not wrong, (
        "the config floor imports only pydantic/yaml, the model only torch/pydantic/safetensors:\n" + "\n".join(wrong)
    )


def test_imports_inside_functions_say_why_they_are_lazy() -> None:
    unexplained = [
        f"{i.source.relative_to(REPO)}:{i.line} {i.target}" for i in ALL_IMPORTS if i.in_function and not i.reason
    ]
    assert not unexplained, (
        "an import inside a function hides the dependency graph; move it to the top of the "
        "module or add '# lazy: <why>' (start-up time, optional dependency):\n" + "\n".join(unexplained)
    )


def _is_numba_kernel(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("jit" in ast.unparse(d) for d in fn.decorator_list)


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for path in SOURCES:
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_numba_kernel(fn):
                length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{fn.lineno} {fn.name} ({length} lines)")
    assert not long, "functions longer than 60 lines:\n" + "\n".join(long)


def test_docstrings_cite_only_documents_inside_the_repository() -> None:
    outside = []
    for path in [*SOURCES, *REPO.glob("*.md"), *REPO.glob("docs/*.md"), *REPO.glob("trm/presets/**/*.yaml")]:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "spec §" in line or ("../shared" in line and "datasets" not in line):
                outside.append(f"{path.relative_to(REPO)}:{number}")
    assert not outside, "references to files outside the repository:\n" + "\n".join(outside)
