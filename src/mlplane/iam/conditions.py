"""IAM condition expressions (CEL), evaluated locally exactly as they are exported.

mlplane's conditions narrow a grant by resource type and name; the same expression text goes to
Terraform (`condition { expression }`), to gcloud (`--condition=expression=...`) and into the
compiled policy, and the local authorizer evaluates that text here. The subset is what IAM
conditions on resource attributes use: `resource.type`, `resource.name`, `resource.service`;
`==`, `!=`; `.startsWith()`, `.endsWith()`, `.extract()`; `&&`, `||`, `!` and parentheses.
Anything else is a ValueError naming what is not supported, so an expression the authorizer cannot
evaluate is refused when the model is loaded, never silently allowed or denied.

Resource names are the full IAM names Google evaluates (`projects/P/zones/Z/instances/NAME`); a
ResourceRef carries no zone, so locally the zone segment is `-` (mlplane's expressions extract
the instance name and do not look at the zone). On the start-up path: no typing, no dataclasses.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (start-up path)
if TYPE_CHECKING:
    from collections.abc import Callable

    Resource = tuple[str, str, str]  # (type, name, service)
    Node = Callable[[Resource], object]

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>&&|\|\||==|!=|[()!.,])|(?P<id>[A-Za-z_][A-Za-z0-9_]*))'
)
_ATTRS = ("type", "name", "service")
_METHODS = {"startsWith": 1, "endsWith": 1, "extract": 1}

# ResourceRef kind -> (IAM resource type, full-name template); the service is the type's prefix.
_COMPUTE = "compute.googleapis.com"
RESOURCE_TYPES: dict[str, tuple[str, str]] = {
    "project": ("cloudresourcemanager.googleapis.com/Project", "projects/{p}"),
    "instance": (f"{_COMPUTE}/Instance", "projects/{p}/zones/-/instances/{n}"),
    "instanceGroupManager": (
        f"{_COMPUTE}/InstanceGroupManager",
        "projects/{p}/zones/-/instanceGroupManagers/{n}",
    ),
    "autoscaler": (f"{_COMPUTE}/Autoscaler", "projects/{p}/zones/-/autoscalers/{n}"),
    "bucket": ("storage.googleapis.com/Bucket", "projects/_/buckets/{n}"),
    "secret": ("secretmanager.googleapis.com/Secret", "projects/{p}/secrets/{n}"),
    "serviceAccount": ("iam.googleapis.com/ServiceAccount", "projects/{p}/serviceAccounts/{n}"),
}


def iam_resource(kind: str, name: str, project: str) -> tuple[str, str, str]:
    """(resource.type, resource.name, resource.service) of a ResourceRef as IAM sees it. Global
    Compute Engine kinds not listed above follow `projects/P/global/{kind}s/NAME`."""
    known = RESOURCE_TYPES.get(kind)
    if known is not None:
        rtype, template = known
        return rtype, template.format(p=project, n=name), rtype.partition("/")[0]
    title = kind[:1].upper() + kind[1:]
    plural = kind[:-1] + "ies" if kind.endswith("y") else kind + "s"
    return f"{_COMPUTE}/{title}", f"projects/{project}/global/{plural}/{name}", _COMPUTE


def _extract(text: str, template: str) -> str:
    """CEL `extract`: the first `{var}` of `template` where its literal parts match, else ""."""
    head, brace, rest = template.partition("{")
    var_end = rest.find("}")
    if not brace or var_end < 0:
        raise ValueError(f"extract template '{template}' has no {{variable}}")
    tail = rest[var_end + 1 :]
    start = text.find(head)
    if start < 0:
        return ""
    value = text[start + len(head) :]
    if tail:
        end = value.find(tail)
        return value[:end] if end >= 0 else ""
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"condition: unexpected '{text[pos:].strip()[:20]}'")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise ValueError(f"condition '{self.text}': ends early")
        tok = self.tokens[self.i]
        if expected is not None and tok[1] != expected:
            raise ValueError(f"condition '{self.text}': expected '{expected}', found '{tok[1]}'")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_()
        if self.i != len(self.tokens):
            raise ValueError(f"condition '{self.text}': unexpected '{self.peek()}'")
        return node

    def or_(self) -> Node:
        left = self.and_()
        while self.peek() == "||":
            self.take()
            left = _either(left, self.and_())
        return left

    def and_(self) -> Node:
        left = self.unary()
        while self.peek() == "&&":
            self.take()
            left = _both(left, self.unary())
        return left

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda r: not inner(r)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.value()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            right = self.value()
            if op == "==":
                return lambda r: left(r) == right(r)
            return lambda r: left(r) != right(r)
        return left

    def value(self) -> Node:
        kind, tok = self.take()
        if tok == "(":
            node = self.or_()
            self.take(")")
            return node
        if kind == "str":
            node = _literal(_unquote(tok))
        elif tok == "resource":
            self.take(".")
            attr = self.take()[1]
            if attr not in _ATTRS:
                raise ValueError(f"condition '{self.text}': resource.{attr} is not supported")
            node = _attribute(_ATTRS.index(attr))
        else:
            raise ValueError(f"condition '{self.text}': '{tok}' is not supported")
        while self.peek() == ".":
            self.take()
            method = self.take()[1]
            if method not in _METHODS:
                raise ValueError(f"condition '{self.text}': .{method}() is not supported")
            self.take("(")
            kind, arg = self.take()
            if kind != "str":
                raise ValueError(f"condition '{self.text}': .{method}() takes a string")
            self.take(")")
            node = _method(node, method, _unquote(arg))
        return node


def _either(a: Node, b: Node) -> Node:
    return lambda r: bool(a(r)) or bool(b(r))


def _both(a: Node, b: Node) -> Node:
    return lambda r: bool(a(r)) and bool(b(r))


def _literal(value: str) -> Node:
    return lambda r: value


def _attribute(index: int) -> Node:
    return lambda r: r[index]


def _method(node: Node, method: str, arg: str) -> Node:
    if method == "startsWith":
        return lambda r: str(node(r)).startswith(arg)
    if method == "endsWith":
        return lambda r: str(node(r)).endswith(arg)
    _extract("", arg)  # validate the template now
    return lambda r: _extract(str(node(r)), arg)


def _unquote(token: str) -> str:
    return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")


_COMPILED: dict[str, Node] = {}


def compile_condition(expression: str) -> Node:
    """A callable over (type, name, service); raises ValueError for what is not supported."""
    node = _COMPILED.get(expression)
    if node is None:
        node = _COMPILED[expression] = _Parser(expression).parse()
    return node


def holds(expression: str, kind: str, name: str, project: str) -> bool:
    """Whether `expression` admits the resource (kind, name) of `project`."""
    return bool(compile_condition(expression)(iam_resource(kind, name, project)))
