"""The package tree is the layering: every module imports only from its own layer or below, and
no two modules import each other, directly or round a longer circle."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "multinet"
# Bottom to top. A module may import from its own layer and any layer before it.
LAYERS = [
    {"multinet.config", "multinet.startup", "multinet.distributed", "multinet.notes"},
    {"multinet.state"},
    {"multinet.nets"},
    {"multinet.data"},
    {"multinet.engine"},
    {"multinet.handlers", "multinet.tracking"},
    {"multinet.run"},
    {"multinet.experiments"},
    {"multinet.cli", "multinet.gan", "multinet.autoencoder"},
    {"multinet", "multinet.__main__"},
]


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > len(best[1])):
                best = (i, n)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS"
    return best[0]


def _exists(module: str) -> bool:
    path = ROOT.parent / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path: Path) -> dict[str, bool]:
    """multinet modules imported by ``path``: name -> whether at module level (not inside a function)."""
    me = _name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body} | {id(c) for n in tree.body if isinstance(n, ast.If) for c in ast.walk(n)}
    out: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from .. import distributed" imports the module multinet.distributed, not multinet
            names = [f"{target}.{a.name}" if _exists(f"{target}.{a.name}") else target for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for n in names:
            while n and not _exists(n):
                n = n.rpartition(".")[0]
            if n.startswith("multinet") and n != me:
                out[n] = out.get(n, False) or id(node) in top
    return out


GRAPH = {_name(p): _imports(p) for p in ROOT.rglob("*.py") if "_recipes" not in p.parts}


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
              if _layer(t) > _layer(m) and m != "multinet"]
    assert not upward, "upward imports: " + ", ".join(sorted(upward))


def test_no_import_circle_between_modules():
    # module-level imports only, without the re-exporting package __init__ files (a package
    # importing its own modules is not a circle of code depending on itself)
    pkgs = {_name(p) for p in ROOT.rglob("__init__.py")}
    edges = {m: {t for t, top in ts.items() if top and t not in pkgs and t != m}
             for m, ts in GRAPH.items() if m not in pkgs}
    for m, ts in GRAPH.items():  # "from ..engine import X" reaches the package's modules
        if m in pkgs:
            continue
        for t, top in ts.items():
            if top and t in pkgs and not m.startswith(t + "."):
                edges[m] |= {x for x, tt in GRAPH[t].items() if tt and x.startswith(t + ".") and x not in pkgs}
    circles, state = [], {}

    def visit(m, stack):
        state[m] = 1
        for t in edges.get(m, ()):
            if state.get(t) == 1:
                circles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert not circles, "import circles: " + "; ".join(circles)


def test_at_most_ten_modules_at_the_root_and_none_over_300_lines():
    root = [p.name for p in ROOT.glob("*.py")]
    assert len(root) <= 10, root
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_the_documented_layout_names_every_module():
    layout = (ROOT.parent / "docs" / "reference" / "layout.md").read_text()
    missing = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and "_recipes" not in p.parts
               and f"`{p.name}`" not in layout and f"`{p.name.removesuffix('.py')}" not in layout]
    assert not missing, missing
