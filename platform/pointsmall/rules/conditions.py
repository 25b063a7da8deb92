"""CEL conditions: a type check when a rule is saved, and the time-zone accessors.

The CEL library compiles and runs expressions but has no type checker, so an unknown
function or a call with the wrong argument types showed only at run time, in every verdict.
CEL's grammar is small: `check` parses the expression again and types it against what
conditions see (`event`, `member`, `now`) and the functions the library runs. Event data is
the merchant's own (`dyn`): any use of it passes here, and what fails on one event is a
run-time skip with its reason.

The library implements the timestamp accessors (`getMonth()`, `getHours()`, ...) only
without a zone, and then in the timestamp's own offset where CEL says UTC. So each accessor
on a timestamp is compiled as a call of `ACCESSORS` (a zone name or offset, default UTC):
`check` returns the source with `"UTC"` put into the calls that name no zone.

`check` also bounds and measures the work: comprehensions nest at most `MAX_LOOPS` deep
(each multiplies the work by the size of its list, and merchant data may hold a list of
thousands), and it says which conditions may run long (`Checked.heavy`) and how much data
the others touch (`Checked.weight`), for the engine to run them apart from the API."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cel

# --- the time-zone accessors -----------------------------------------------------------------

_OFFSET = re.compile(r"([+-])([01][0-9]|2[0-3]):([0-5][0-9])")


def zone(name: str) -> tzinfo:
    """A CEL time zone: an IANA name (`Asia/Shanghai`, `UTC`) or an offset (`+08:00`)."""
    if offset := _OFFSET.fullmatch(name):
        sign = -1 if offset[1] == "-" else 1
        return timezone(sign * timedelta(hours=int(offset[2]), minutes=int(offset[3])))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone") from None


_PARTS: dict[str, Callable[[datetime], int]] = {
    "getFullYear": lambda t: t.year,
    "getMonth": lambda t: t.month - 1,  # CEL counts months, days of the year and month from 0
    "getDayOfYear": lambda t: t.timetuple().tm_yday - 1,
    "getDayOfMonth": lambda t: t.day - 1,
    "getDate": lambda t: t.day,
    "getDayOfWeek": lambda t: t.isoweekday() % 7,  # Sunday is 0
    "getHours": lambda t: t.hour,
    "getMinutes": lambda t: t.minute,
    "getSeconds": lambda t: t.second,
    "getMilliseconds": lambda t: t.microsecond // 1000,
}
# Durations have these four too, counted in total.
_DURATION_UNITS = {
    "getHours": timedelta(hours=1),
    "getMinutes": timedelta(minutes=1),
    "getSeconds": timedelta(seconds=1),
    "getMilliseconds": timedelta(milliseconds=1),
}


def _accessor(name: str) -> Callable[..., int]:
    part = _PARTS[name]

    def get(value: Any, zone_name: Any = "UTC") -> int:
        if isinstance(value, timedelta) and name in _DURATION_UNITS:
            return int(value / _DURATION_UNITS[name])
        if not isinstance(value, datetime) or not isinstance(zone_name, str):
            raise TypeError(f"{name}() takes a timestamp and a time zone")
        return part(value.astimezone(zone(zone_name)))

    return get


ACCESSORS: dict[str, Callable[..., int]] = {name: _accessor(name) for name in _PARTS}


# --- types -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Type:
    name: str  # int uint double bool string bytes null_type timestamp duration list map type dyn
    params: tuple["Type", ...] = ()  # list(T), map(K, V)
    nullable: bool = False  # a member field that may be null
    fields: tuple[tuple[str, "Type"], ...] = ()  # `event` and `member`: maps of known fields
    noun: str = ""

    def __str__(self) -> str:
        if self.params:
            return f"{self.name}({', '.join(map(str, self.params))})"
        return self.name + (" or null" if self.nullable else "")


INT, UINT, DOUBLE, BOOL = Type("int"), Type("uint"), Type("double"), Type("bool")
STRING, BYTES, NULL, TYPE = Type("string"), Type("bytes"), Type("null_type"), Type("type")
TIMESTAMP, DURATION, DYN = Type("timestamp"), Type("duration"), Type("dyn")
LIST, MAP = Type("list", (DYN,)), Type("map", (DYN, DYN))  # any list, any map
NUMBERS = (INT, UINT, DOUBLE)


def list_of(item: Type) -> Type:
    return Type("list", (item,))


def map_of(key: Type, value: Type) -> Type:
    return Type("map", (key, value))


def _record(noun: str, **fields: Type) -> Type:
    return Type("map", (STRING, DYN), fields=tuple(sorted(fields.items())), noun=noun)


_MAYBE_STRING = Type("string", nullable=True)
DATA = map_of(STRING, DYN)
VARIABLES = {
    "event": _record("event", type=STRING, occurred_at=TIMESTAMP, data=DATA),
    "member": _record(
        "member",
        id=STRING,
        external_id=STRING,
        email=_MAYBE_STRING,
        name=_MAYBE_STRING,
        tier=_MAYBE_STRING,
        attributes=DATA,
        lifetime_points=INT,
        signup_date=TIMESTAMP,
        streak=INT,
    ),
    "now": TIMESTAMP,
}
# Type names the library knows as values (`type(x) == string`); it has no `timestamp` type
# name, nor `google.protobuf.Timestamp`.
TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)

Overload = tuple[tuple[Type, ...], Type]  # parameters (a method's target first), result


def _same(result: Type | None, *types: Type) -> list[Overload]:
    return [((t, t), result or t) for t in types]


_COMPARE = [((a, b), BOOL) for a in NUMBERS for b in NUMBERS] + _same(
    BOOL, STRING, BYTES, BOOL, TIMESTAMP, DURATION
)
# What the library runs (probed: it has no `int(timestamp)`, `string(bool)`, `duration +
# timestamp`, `-duration`, `double % double`, ...). Equality, `in`, indexes, `? :`, `dyn`,
# `type` and list concatenation take any types: `_Checker.generic` and `overload` judge them.
GLOBALS: dict[str, list[Overload]] = {
    "_+_": [
        *_same(None, INT, UINT, DOUBLE, STRING, BYTES, DURATION),
        ((TIMESTAMP, DURATION), TIMESTAMP),
    ],
    "_-_": [
        *_same(None, INT, UINT, DOUBLE, DURATION),
        ((TIMESTAMP, TIMESTAMP), DURATION),
        ((TIMESTAMP, DURATION), TIMESTAMP),
    ],
    "_*_": _same(None, INT, UINT, DOUBLE),
    "_/_": _same(None, INT, UINT, DOUBLE),
    "_%_": _same(None, INT, UINT),
    "-_": [((INT,), INT), ((DOUBLE,), DOUBLE)],
    "!_": [((BOOL,), BOOL)],
    "_&&_": [((BOOL, BOOL), BOOL)],
    "_||_": [((BOOL, BOOL), BOOL)],
    "_<_": _COMPARE,
    "_<=_": _COMPARE,
    "_>_": _COMPARE,
    "_>=_": _COMPARE,
    "size": [((t,), INT) for t in (STRING, BYTES, LIST, MAP)],
    "int": [((t,), INT) for t in (INT, UINT, DOUBLE, STRING)],
    "uint": [((t,), UINT) for t in (INT, UINT, DOUBLE, STRING)],
    "double": [((t,), DOUBLE) for t in (INT, UINT, DOUBLE, STRING)],
    "string": [((t,), STRING) for t in (INT, UINT, DOUBLE, STRING, BYTES, TIMESTAMP, DURATION)],
    "bytes": [((t,), BYTES) for t in (STRING, BYTES)],
    "timestamp": [((t,), TIMESTAMP) for t in (STRING, TIMESTAMP)],
    "duration": [((t,), DURATION) for t in (STRING, DURATION)],
}
METHODS: dict[str, list[Overload]] = {
    "size": GLOBALS["size"],
    **{name: [((STRING, STRING), BOOL)] for name in ("contains", "startsWith", "endsWith")},
    "matches": [((STRING, STRING), BOOL)],
    **{name: [((TIMESTAMP,), INT), ((TIMESTAMP, STRING), INT)] for name in _PARTS},
}
for _name in _DURATION_UNITS:
    METHODS[_name].append(((DURATION,), INT))
_GENERIC = {"_==_", "_!=_", "@in", "_[_]", "_?_:_", "dyn", "type"}
MACROS = {"all", "exists", "exists_one", "map", "filter"}
_SYMBOLS = {"_[_]": "[]", "@in": "in", "_?_:_": "? :"}


def _display(function: str) -> str:
    return _SYMBOLS.get(function) or function.strip("_")


# --- parsing ---------------------------------------------------------------------------------


class ConditionError(Exception):
    """A condition that does not type-check; the message says where."""


@dataclass(slots=True)
class Node:
    kind: str  # literal, ident, select, call, list, map
    pos: int
    name: str = ""  # an identifier, a field or a function
    args: list["Node"] = field(default_factory=list)  # a method's target first
    type: Type | None = None  # of a literal
    value: Any = None  # of a string literal
    method: bool = False
    close: int = 0  # where a call's ")" is
    depth: int = 1
    variables: int = 0  # references to variables in it
    weight: int = 0  # the sum of `variables` over it and what is in it


_TOKENS = re.compile(
    r"""(?P<space>\s+|//[^\n]*)
    |(?P<raw>(?:[rR][bB]?|[bB][rR])(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'[^'\n]*'|"[^"\n]*"))
    |(?P<string>[bB]?(?:'''(?:\\[\s\S]|[^\\])*?'''|\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"
        |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<double>(?:[0-9]+\.[0-9]+|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)
    |(?P<uint>(?:0[xX][0-9a-fA-F]+|[0-9]+)[uU])
    |(?P<int>0[xX][0-9a-fA-F]+|[0-9]+)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.,()\[\]{}])""",
    re.VERBOSE,
)
_LITERALS = {"double": DOUBLE, "uint": UINT, "int": INT}
# Binary operators by precedence, loosest first.
_LEVELS = {
    "||": 0,
    "&&": 1,
    **dict.fromkeys(("<", "<=", ">", ">=", "==", "!=", "in"), 2),
    **dict.fromkeys(("+", "-"), 3),
    **dict.fromkeys(("*", "/", "%"), 4),
}
# Parser and checker recurse: bound brackets and chains far beyond what a rule needs (the
# library itself refuses brackets nested 96 deep).
MAX_NESTING, MAX_DEPTH = 60, 100
# Comprehensions in comprehensions: three `.all()` over a 300-item list ran for 8 s.
MAX_LOOPS = 2


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(source):
            match = _TOKENS.match(source, pos)
            if match is None:
                raise ConditionError(f"unexpected {source[pos]!r}{self.where(pos)}")
            kind = match.lastgroup or ""
            if kind != "space":
                self.tokens.append((kind, match.group(), pos))
            pos = match.end()
        self.tokens.append(("end", "", len(source)))
        self.i = 0
        self.nesting = 0

    def where(self, pos: int) -> str:
        line = self.source.count("\n", 0, pos) + 1
        column = pos - (self.source.rfind("\n", 0, pos) + 1) + 1
        return f" (at {line}:{column})"

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def at(self, *texts: str) -> bool:
        kind, text, _ = self.tokens[self.i]
        return kind in ("op", "ident") and text in texts

    def take(self, text: str | None = None) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        if text is not None and token[1] != text:
            found = repr(token[1]) if token[1] else "the end"
            raise ConditionError(f"expected {text!r}, found {found}{self.where(token[2])}")
        self.i += 1
        return token

    def node(self, kind: str, pos: int, **values: Any) -> Node:
        made = Node(kind, pos, **values)
        made.depth = 1 + max((arg.depth for arg in made.args), default=0)
        made.variables = (kind == "ident") + sum(arg.variables for arg in made.args)
        made.weight = made.variables + sum(arg.weight for arg in made.args)
        if made.depth > MAX_DEPTH:
            raise ConditionError(f"the condition is nested too deeply{self.where(pos)}")
        return made

    def call(self, function: str, pos: int, args: list[Node], **values: Any) -> Node:
        return self.node("call", pos, name=function, args=args, **values)

    def parse(self) -> Node:
        tree = self.expr()
        kind, text, pos = self.peek()
        if kind != "end":
            raise ConditionError(f"unexpected {text!r}{self.where(pos)}")
        return tree

    def expr(self) -> Node:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ConditionError(f"the condition is nested too deeply{self.where(self.peek()[2])}")
        condition = self.binary(0)
        if self.at("?"):
            pos = self.take()[2]
            then = self.binary(0)
            self.take(":")
            condition = self.call("_?_:_", pos, [condition, then, self.expr()])
        self.nesting -= 1
        return condition

    def binary(self, lowest: int) -> Node:
        """Precedence climbing: operators of level `lowest` and tighter, left to right."""
        left = self.unary()
        while self.peek()[0] in ("op", "ident") and _LEVELS.get(self.peek()[1], -1) >= lowest:
            _, op, pos = self.take()
            function = "@in" if op == "in" else f"_{op}_"
            left = self.call(function, pos, [left, self.binary(_LEVELS[op] + 1)])
        return left

    def unary(self) -> Node:
        ops = []
        while self.at("!", "-"):
            ops.append(self.take())
        node = self.member()
        for _, op, pos in reversed(ops):
            if op == "-" and node.kind == "literal" and node.type in (INT, DOUBLE):
                continue  # a negative number
            node = self.call(f"{op}_", pos, [node])
        return node

    def member(self) -> Node:
        node = self.primary()
        while self.at(".", "["):
            _, op, pos = self.take()
            if op == "[":
                node = self.call("_[_]", pos, [node, self.expr()])
                self.take("]")
                continue
            kind, name, pos = self.take()
            if kind != "ident":
                raise ConditionError(f"expected a field name{self.where(pos)}")
            if self.at("("):
                args, close = self.arguments(")")
                node = self.call(name, pos, [node, *args], method=True, close=close)
            else:
                node = self.node("select", pos, name=name, args=[node])
        return node

    def arguments(self, end: str) -> tuple[list[Node], int]:
        self.take()
        args: list[Node] = []
        while not self.at(end):
            args.append(self.expr())
            if not self.at(end):
                self.take(",")
        return args, self.take(end)[2]

    def primary(self) -> Node:
        kind, text, pos = self.take()
        if kind == "op" and text == ".":  # a leading dot: the root scope
            kind, text, pos = self.take()
        if kind == "ident":
            if text in ("true", "false"):
                return self.node("literal", pos, type=BOOL)
            if text == "null":
                return self.node("literal", pos, type=NULL)
            if self.at("("):
                args, close = self.arguments(")")
                return self.call(text, pos, args, close=close)
            return self.node("ident", pos, name=text)
        if kind in _LITERALS:
            return self.node("literal", pos, type=_LITERALS[kind])
        if kind in ("string", "raw"):
            value = cel.evaluate(text)  # the library decodes escapes exactly as it will run
            return self.node(
                "literal", pos, type=BYTES if isinstance(value, bytes) else STRING, value=value
            )
        if text == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if text == "[":
            self.i -= 1
            items, _ = self.arguments("]")
            return self.node("list", pos, args=items)
        if text == "{":
            entries: list[Node] = []
            while not self.at("}"):
                entries.append(self.expr())
                self.take(":")
                entries.append(self.expr())
                if not self.at("}"):
                    self.take(",")
            self.take("}")
            return self.node("map", pos, args=entries)
        found = repr(text) if text else "the end"
        raise ConditionError(f"unexpected {found}{self.where(pos)}")


# --- checking --------------------------------------------------------------------------------


def _fits(param: Type, arg: Type) -> bool:
    return DYN in (param, arg) or param.name == arg.name


def _comparable(a: Type, b: Type) -> bool:
    """What `==` and `in` may compare without being always false: equal kinds, numbers,
    and null with what may be null."""
    if DYN in (a, b) or a.name == b.name:
        return True
    if a in NUMBERS and b in NUMBERS:
        return True
    return (a == NULL and b.nullable) or (b == NULL and a.nullable)


def _join(types: list[Type]) -> Type:
    """The type of a list's items or of a conditional's branches: theirs when they agree."""
    distinct = set(types)
    if len(distinct) == 1:
        return distinct.pop()
    if len({(t.name, t.params, t.fields) for t in distinct}) == 1:
        return next(t for t in distinct if t.nullable)  # a string and a string or null
    return DYN


def _element(container: Type) -> Type | None:
    """What a comprehension ranges over: a list's items, a map's keys."""
    if container.name in ("list", "map"):
        return container.params[0]
    return DYN if container == DYN else None


class _Checker:
    def __init__(self, parser: _Parser) -> None:
        self.parser = parser
        self.utc: list[int] = []  # where `"UTC"` goes into accessors that name no zone
        self.loops = 0  # comprehensions around the node being checked
        self.heavy = False  # a comprehension or a regular expression

    def fail(self, node: Node, message: str) -> ConditionError:
        return ConditionError(message + self.parser.where(node.pos))

    def check(self, node: Node, scope: dict[str, Type]) -> Type:
        if node.kind == "literal":
            assert node.type is not None
            return node.type
        if node.kind == "ident":
            if node.name in scope:
                return scope[node.name]
            if node.name in TYPE_NAMES:
                return TYPE
            raise self.fail(
                node,
                f"unknown variable {node.name!r}; conditions see event, member and now",
            )
        if node.kind == "select":
            return self.select(node, self.check(node.args[0], scope), node.name)
        if node.kind == "list":
            return list_of(_join([self.check(item, scope) for item in node.args]))
        if node.kind == "map":
            types = [self.check(entry, scope) for entry in node.args]
            keys, values = types[::2], types[1::2]
            for key, entry in zip(keys, node.args[::2], strict=True):
                if key not in (INT, UINT, BOOL, STRING, DYN):
                    raise self.fail(entry, f"a map key cannot be a {key}")
            return map_of(_join(keys), _join(values))
        return self.call(node, scope)

    def select(self, node: Node, target: Type, name: str) -> Type:
        if target.fields:
            known = dict(target.fields)
            if name not in known:
                noun = target.noun
                raise self.fail(
                    node, f"unknown {noun} field {name!r}; {noun}s have {', '.join(known)}"
                )
            return known[name]
        if target.name == "map" and _fits(target.params[0], STRING):
            return target.params[1]
        if target == DYN:
            return DYN
        raise self.fail(node, f"a {target} has no field {name!r}")

    def call(self, node: Node, scope: dict[str, Type]) -> Type:
        name, args = node.name, node.args
        if node.method and name in MACROS:
            return self.macro(node, scope)
        if name == "has" and not node.method:
            if len(args) != 1 or args[0].kind != "select":
                raise self.fail(node, "has() takes a field, as in has(event.data.sku)")
            target = args[0]
            self.select(target, self.check(target.args[0], scope), target.name)
            return BOOL
        types = [self.check(arg, scope) for arg in args]
        if name in _GENERIC and not node.method:
            result = self.generic(node, types)
        else:
            result = self.overload(node, types)
        if name == "matches":
            self.heavy = True  # its pattern is compiled at each run: 15 ms for a large one
        if node.method and name in _PARTS and types[0] in (TIMESTAMP, DYN):
            if len(args) == 1:
                self.utc.append(node.close)
            elif args[1].value is not None:  # a zone given as a literal is checked now
                try:
                    zone(args[1].value)
                except ValueError:
                    message = f"{args[1].value!r} is not a time zone (a name such as"
                    raise self.fail(args[1], message + ' "Asia/Shanghai", or "+08:00")') from None
        return result

    def no_overload(self, node: Node, types: list[Type]) -> ConditionError:
        shown = ", ".join(map(str, types))
        return self.fail(node, f"no overload of {_display(node.name)!r} takes ({shown})")

    def overload(self, node: Node, types: list[Type]) -> Type:
        table = METHODS if node.method else GLOBALS
        if node.name not in table:
            raise self.fail(node, f"unknown function {node.name!r}")
        if node.name == "_+_" and all(t.name in ("list", "dyn") for t in types):
            return _join(types) if DYN not in types else DYN  # lists concatenate
        results = {
            result
            for params, result in table[node.name]
            if len(params) == len(types) and all(map(_fits, params, types))
        }
        if not results:
            raise self.no_overload(node, types)
        return results.pop() if len(results) == 1 else DYN

    def generic(self, node: Node, types: list[Type]) -> Type:
        name = node.name
        if name in ("dyn", "type"):
            if len(types) != 1:
                raise self.no_overload(node, types)
            return DYN if name == "dyn" else TYPE
        if name in ("_==_", "_!=_"):
            if not _comparable(*types):
                raise self.no_overload(node, types)
            return BOOL
        if name == "_?_:_":
            if not _fits(BOOL, types[0]):
                raise self.no_overload(node, types)
            return _join(types[1:])
        if name == "@in":
            item = _element(types[1])
            if item is None or not _comparable(types[0], item):
                raise self.no_overload(node, types)
            return BOOL
        container, index = types  # _[_]
        if container.fields and node.args[1].value is not None:
            return self.select(node, container, node.args[1].value)
        if container.name == "list" and index in (INT, UINT, DYN):
            return container.params[0]
        if container.name == "map" and _comparable(container.params[0], index):
            return container.params[1]
        if container == DYN:
            return DYN
        raise self.no_overload(node, types)

    def macro(self, node: Node, scope: dict[str, Type]) -> Type:
        target, *args = node.args
        shapes = {"map": (2, 3), "filter": (2,)}.get(node.name, (2,))
        if len(args) not in shapes or args[0].kind != "ident":
            raise self.fail(node, f"{node.name}() takes a variable name and an expression")
        item = _element(self.check(target, scope))
        if item is None:
            raise self.fail(node, f"{node.name}() ranges over a list or a map")
        if self.loops == MAX_LOOPS:
            raise self.fail(
                node,
                f"{node.name}() inside {MAX_LOOPS} other comprehensions: they nest at most"
                f" {MAX_LOOPS} deep, as each one runs the next for every item",
            )
        self.heavy = True
        inner = {**scope, args[0].name: item}
        self.loops += 1
        checked = [self.check(arg, inner) for arg in args[1:]]
        self.loops -= 1
        if node.name == "map":  # map(x, [filter,] transform)
            predicates, result = checked[:-1], list_of(checked[-1])
        else:
            predicates, result = checked, list_of(item) if node.name == "filter" else BOOL
        for predicate, arg in zip(predicates, args[1:], strict=False):
            if not _fits(BOOL, predicate):
                raise self.fail(arg, f"{node.name}() needs a bool here, not a {predicate}")
        return result


@dataclass(frozen=True, slots=True)
class Checked:
    source: str  # to compile: with `"UTC"` in the timestamp accessors that name no zone
    # Comprehensions or regular expressions: work that grows faster than the data.
    heavy: bool
    # Otherwise each operator works at most once on the values beneath it, each no larger
    # than the data: the work is at most about `weight` times the size of the data.
    weight: int


def check(source: str) -> Checked:
    """Type-check a condition (raises ConditionError), and say what to compile and how much
    work it may be."""
    parser = _Parser(source)
    checker = _Checker(parser)
    tree = parser.parse()
    result = checker.check(tree, dict(VARIABLES))
    if not _fits(BOOL, result):
        raise ConditionError(f"the condition is of type {result}, not a bool")
    for pos in sorted(checker.utc, reverse=True):
        source = source[:pos] + '"UTC"' + source[pos:]
    return Checked(source, checker.heavy, tree.weight)
