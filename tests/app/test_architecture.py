"""The layers stay layers: no import cycle between packages, api/ and monitoring/ below the features,
one composition root, and benchmarks that import nothing from the tests (issue 16, point 2); one job per
package - reading files (ingest/), storing and searching (rag/), the answer step (answers/) - none over a
fifth of the application (issue 29, point 1).

Every import counts, also those inside functions: a lazy import is still a dependency."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("answers", "api", "auth", "common", "ingest", "llm", "maintenance", "monitoring", "openai_api", "rag",
            "sessions", "workspaces")
MODULES = ("app", "config", "services", "error_table", "wsgi")  # top-level modules, each a node of its own
NODES = (*PACKAGES, *MODULES, "bench", "fixtures", "tests")


def imported_nodes(path: Path) -> set[str]:
    """The nodes (packages or top-level modules) a file imports from."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in NODES}
    return found


def files_of(node: str) -> list[Path]:
    return sorted((ROOT / node).rglob("*.py")) if (ROOT / node).is_dir() else [ROOT / f"{node}.py"]


def dependencies(nodes: tuple[str, ...] = NODES) -> dict[str, dict[str, Path]]:
    """node -> {node it imports: the first file that does}."""
    graph: dict[str, dict[str, Path]] = defaultdict(dict)
    for node in nodes:
        for path in files_of(node):
            for target in imported_nodes(path) - {node}:
                graph[node].setdefault(target, path)
    return graph


def cycles(graph: dict[str, dict[str, Path]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_packages():
    graph = dependencies()
    found = cycles(graph)
    explained = [[f"{a} -> {b} ({graph[a][b].relative_to(ROOT)})" for a in group for b in group if b in graph[a]]
                 for group in found]
    assert not found, explained


def test_the_cycle_check_finds_a_cycle():
    """The check itself can fail: two packages importing each other are one cycle."""
    graph = {"api": {"rag": ROOT / "api/x.py"}, "rag": {"api": ROOT / "rag/y.py"}, "common": {}}
    assert cycles(graph) == [["api", "rag"]]


def test_api_and_common_are_plumbing_that_imports_no_feature_package():
    graph = dependencies()
    assert set(graph["api"]) <= {"common", "config"}, graph["api"]
    assert set(graph["common"]) <= {"config"}, graph["common"]


def test_monitoring_components_import_nothing_above_common():
    """Its routes and their schemas may use auth and api; health, metrics, the audit log and the
    rest depend on nothing above common/."""
    for path in files_of("monitoring"):
        if path.name not in ("routes.py", "schemas.py"):
            assert imported_nodes(path) <= {"monitoring", "common"}, path


def test_only_the_composition_root_and_app_build_services():
    """Feature packages never import the composition root, the app or the error table."""
    graph = dependencies()
    for package in PACKAGES:
        assert not set(graph[package]) & {"services", "app", "error_table", "wsgi"}, (package, graph[package])


def test_the_error_table_imports_only_errors_modules():
    tree = ast.parse((ROOT / "error_table.py").read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert modules - {"__future__"} and all(module.endswith(".errors") for module in modules - {"__future__"}), modules


def test_benchmarks_import_nothing_from_the_tests():
    assert "tests" not in dependencies(("bench",))["bench"]


def test_create_app_serves_the_services_it_is_given(tmp_path):
    """A test can build the services itself (real or with a part swapped) and hand them in."""
    from app import create_app
    from config import Config
    from services import build_services

    config = Config.for_testing(tmp_path / "data")
    (tmp_path / "data").mkdir()
    built = build_services(config)
    try:
        app = create_app(config, services=built)
        assert app.extensions["docchat"] is built
        created = app.test_client().post("/auth/register", json={"username": "ada", "password": "correct horse"})
        assert created.status_code == 201 and built.users.find("ada").username == "ada"
    finally:
        built.close()


# Who may import whom among the document packages: reading files builds on the stores (it writes chunks
# into them), the answer step reads search results, and storing and searching know neither. Routes
# may use the HTTP plumbing (api/) and the login decorators (auth/).
LAYERS = {
    "rag": {"common", "config", "api", "auth"},
    "ingest": {"rag", "common", "config", "api", "auth"},
    "answers": {"rag", "llm", "common", "config"},
}
LARGEST_SHARE = 0.2  # of the application's lines, for any one package


def test_storage_reading_and_answering_import_only_downwards():
    graph = dependencies()
    for package, allowed in LAYERS.items():
        assert set(graph[package]) <= allowed, (package, {name: str(path.relative_to(ROOT))
                                                          for name, path in graph[package].items()})


def application_lines() -> dict[str, int]:
    """Lines of Python per top-level folder or module, tests left out (bench, fixtures, migrations and
    scripts count: they are code the project keeps)."""
    counts: dict[str, int] = defaultdict(int)
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if parts[0] in ("tests", ".venv") or parts[0].startswith("."):
            continue
        counts[parts[0].removesuffix(".py")] += len(path.read_text().splitlines())
    return counts


def test_no_package_holds_over_a_fifth_of_the_application():
    counts = application_lines()
    total = sum(counts.values())
    assert total > 10_000
    shares = {package: round(counts[package] / total, 3) for package in PACKAGES}
    assert max(shares.values()) <= LARGEST_SHARE, shares


def test_test_folders_mirror_the_packages():
    """tests/<package>/ for each package's tests, tests/app/ for the whole server's (config, docs,
    the real server, the browser, scale-out)."""
    folders = {path.name for path in (ROOT / "tests").iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders <= {*PACKAGES, "app"} and not list((ROOT / "tests").glob("test_*.py"))


# What only the shared answer step (answers/step.py) may call: searching for evidence, the sentence
# limit, the markup stops, the stream guard and the final policy. /chat and /v1 call the step.
ANSWER_STEP_PARTS = ("evidence", "concise", "MARKUP_STOPS", "SafeStream", "AnswerPolicy")


def test_chat_and_v1_share_one_answer_step():
    written_twice: dict[str, set[str]] = defaultdict(set)
    for path in [*files_of("sessions"), *files_of("openai_api")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("answers", "llm"):
                used = {alias.name for alias in node.names} & set(ANSWER_STEP_PARTS)
                if used:
                    written_twice[str(path.relative_to(ROOT))] |= used
    assert not written_twice, dict(written_twice)
