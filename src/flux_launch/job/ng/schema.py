"""The JSON Schema of a JobSpec Next Generation document (seed 002), and its
check with one-line errors that name the path (``tasks[1].resources: unknown key
'command' (did you mean to put it in tasks[1]?)``).

Why jsonschema (not pydantic): the format is a document others write and read
in YAML; a JSON Schema is itself a document any tool (an editor, another
launcher) can use to check a workflow, and jsonschema is pure Python, imported
only when a workflow is read (``flux run`` never pays for it).
"""

_NAME = {"type": "string", "minLength": 1, "pattern": r"^[^\s|,]+$"}
_COMMAND = {"oneOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "minItems": 1, "items": {"type": "string"}}]}
_RESOURCE = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "count": {"type": "integer", "minimum": 1},
        "with": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/resource"}},
        "exclusive": {"type": "boolean"},
        "label": {"type": "string", "minLength": 1},
    },
    "additionalProperties": False,
}
_ATTRIBUTES = {
    "type": "object",
    "properties": {
        "duration": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "number", "minimum": 0}]},
        "environment": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "cwd": {"type": "string", "minLength": 1},
        "watch": {"type": "boolean"},
    },
    "additionalProperties": False,
}
_REQUIRES = {"type": "object"}
_STEP = {
    "type": "object",
    "required": ["name", "path"],
    "properties": {"name": {"enum": ["stage"]}, "path": {"type": "string", "minLength": 1}},
    "additionalProperties": False,
}
_TASK = {
    "type": "object",
    "properties": {
        "name": _NAME,
        "command": _COMMAND,
        "group": _NAME,
        "local": {"type": "boolean"},
        "resources": {"oneOf": [{"type": "string", "minLength": 1}, {"$ref": "#/$defs/resource"}]},
        "depends_on": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 100000},
        "attributes": _ATTRIBUTES,
        "requires": _REQUIRES,
        "steps": {"type": "array", "minItems": 1, "items": _STEP},
    },
    "additionalProperties": False,
}
_GROUP = {
    "type": "object",
    "required": ["name", "tasks"],
    "properties": {
        "name": _NAME,
        "resources": {"oneOf": [{"type": "string", "minLength": 1}, {"$ref": "#/$defs/resource"},
                                {"type": "null"}]},
        "tasks": {"type": "array", "minItems": 1, "items": _TASK},
        "depends_on": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "attributes": _ATTRIBUTES,
        "requires": _REQUIRES,
    },
    "additionalProperties": False,
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "JobSpec Next Generation (flux_launch)",
    "type": "object",
    "properties": {
        "version": {"const": 1},
        "requires": _REQUIRES,
        "resources": {"type": "object", "additionalProperties": {"$ref": "#/$defs/resource"}},
        "duration": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "number", "minimum": 0},
                               {"type": "object", "properties": {"duration": {"type": ["string", "number"]}},
                                "required": ["duration"], "additionalProperties": False}]},
        "attributes": _ATTRIBUTES,
        "tasks": {"type": "array", "items": _TASK},
        "groups": {"type": "array", "items": _GROUP},
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["tasks"]}, {"required": ["groups"]}],
    "$defs": {"resource": _RESOURCE},
}


class NGError(ValueError):
    """A JobSpec NG document that cannot be submitted: ``str()`` is one line,
    ``PATH: why``."""


def path_str(path):
    """``tasks[1].resources`` from ``["tasks", 1, "resources"]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _keys_for(schema, instance_path):
    """The known keys at a path of the document (for "did you mean")."""
    node = SCHEMA
    for part in instance_path:
        if node.get("$ref") == "#/$defs/resource":
            node = _RESOURCE
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            props = node.get("properties", {})
            node = props.get(part) or node.get("additionalProperties") or {}
        if "oneOf" in node:
            node = next((o for o in node["oneOf"] if "properties" in o or "$ref" in o), node)
        if node.get("$ref") == "#/$defs/resource":
            node = _RESOURCE
    return list(node.get("properties", {}))


def _message(err):
    """One line for a jsonschema ``ValidationError``."""
    where = path_str(err.absolute_path)
    v, inst = err.validator, err.instance
    if v == "additionalProperties":
        import difflib

        known = _keys_for(SCHEMA, list(err.absolute_path))
        extra = [k for k in inst if k not in known]
        key = extra[0] if extra else "?"
        hint = difflib.get_close_matches(str(key), known, n=1)
        parent = list(err.absolute_path)[:-1]
        if err.absolute_path and key in _keys_for(SCHEMA, parent):
            why = f"unknown key {key!r} (a key of {path_str(parent)}: is it indented too far?)"
        elif hint:
            why = f"unknown key {key!r} (did you mean {hint[0]!r}?)"
        elif known:
            why = f"unknown key {key!r} (known: {', '.join(known)})"
        else:
            why = f"unknown key {key!r}"
        return f"{where}: {why}"
    if v == "required":
        missing = next((k for k in err.validator_value if k not in inst), "?")
        return f"{where}: {missing} is required"
    if v == "anyOf" and not err.absolute_path:
        return "(top level): a workflow needs tasks or groups"
    if v == "const":
        return f"{where}: must be {err.validator_value!r} (got {inst!r})"
    if v == "enum":
        return f"{where}: must be one of {', '.join(map(str, err.validator_value))} (got {inst!r})"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{where}: must be {'an' if want[0] in 'aeiou' else 'a'} {want} (got {_tname(inst)} {inst!r})"
    if v in ("minimum", "maximum"):
        return f"{where}: must be {'at least' if v == 'minimum' else 'at most'} {err.validator_value} (got {inst!r})"
    if v == "minItems":
        return f"{where}: must not be empty"
    if v == "minLength":
        return f"{where}: must not be empty"
    if v == "pattern":
        return f"{where}: {inst!r} is not a name (no spaces, '|' or ',')"
    if v == "oneOf":
        what = {"command": "a string or a list of strings", "resources": "the name of a resources entry or a "
                "resource mapping (type, count, with)", "duration": "a duration (e.g. 300s, 1h) or seconds"}
        last = next((p for p in reversed(list(err.absolute_path)) if isinstance(p, str)), "")
        if last in what:
            return f"{where}: must be {what[last]} (got {_tname(inst)} {inst!r})"
    return f"{where}: {err.message}"


def _tname(value):
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _depth(err):
    return len(list(err.absolute_path))


def check(doc):
    """Raise ``NGError`` (one line, the path first) unless ``doc`` fits SCHEMA."""
    if not isinstance(doc, dict):
        raise NGError(f"a jobspec must be a mapping (got {_tname(doc)})")
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = list(validator.iter_errors(doc))
    if not errors:
        return
    # the deepest error says the most; within oneOf, the branch that got furthest
    err = _best(errors)
    while err.validator == "oneOf" and err.context:
        inner = _best(err.context)
        if inner.validator == "type" and _depth(inner) == _depth(err):
            break  # no branch took the value's type: say what is wanted here
        err = inner
    raise NGError(_message(err))


def _best(errors):
    return max(errors, key=lambda e: (_depth(e), e.validator not in ("type", "oneOf")))
