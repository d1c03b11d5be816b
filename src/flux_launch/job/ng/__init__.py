"""JobSpec Next Generation (seed 002): YAML workflows of tasks, named resources,
``depends_on`` by name, ``replicas``, groups that become nested batch instances,
``local`` tasks, attributes, ``requires`` and ``stage`` steps.

- ``schema.py``: the JSON Schema and its one-line errors (``tasks[1].command: ...``);
- ``plan.py``: the document checked and turned into units (jobspecs V1, local
  commands) in dependency order;
- ``run.py``: a plan submitted whole or not at all, local tasks run, jobs waited.

Used by ``flux job submit FILE``, ``flux submit --jobspec=FILE`` and
``flux.job.submit(h, doc)``.
"""


def is_ng(doc):
    """Whether a parsed jobspec is a NG document rather than a Jobspec V1 (cheap:
    on ``flux.job.submit``'s path)."""
    if not isinstance(doc, dict):
        return False
    if "groups" in doc or isinstance(doc.get("resources"), dict) or "requires" in doc:
        return True
    tasks = doc.get("tasks")
    if not isinstance(tasks, list):
        return False
    return "resources" not in doc or any(isinstance(t, dict) and "slot" not in t for t in tasks)
