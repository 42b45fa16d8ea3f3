"""Project lookups by name go through indexes built once per project, and stay right when the
project's lists are replaced or grown."""

from __future__ import annotations

import time

from apimd.model import Project


def _project(calls: int) -> Project:
    return Project.model_validate(
        {
            "calls": [{"name": f"c{i}", "url": f"http://127.0.0.1/{i}"} for i in range(calls)],
            "workflows": [
                {"name": "w1", "steps": ["c1", "c2", "c1"]},
                {"name": "w2", "steps": ["c2"]},
            ],
        }
    )


def test_lookups_find_by_name_and_miss_cleanly() -> None:
    project = _project(5)
    call = project.call("c3")
    assert call is not None and call.name == "c3"
    assert project.call("nope") is None
    workflow = project.workflow("w2")
    assert workflow is not None and workflow.steps == ["c2"]
    assert project.token("t") is None and project.auth_setting("a") is None
    assert project.parents("c2") == ["w1", "w2"]
    assert project.parents("c1") == ["w1"]  # once, though it is two of w1's steps
    assert project.parents("c4") == []


def test_a_replaced_or_grown_list_is_seen() -> None:
    project = _project(3)
    assert project.call("c0") is not None
    copy = project.model_copy(update={"calls": project.calls[1:]})
    assert copy.call("c0") is None and copy.call("c1") is not None
    assert project.call("c0") is not None  # the original keeps its own index
    project.workflows.append(project.workflows[1].model_copy(update={"name": "w3"}))
    assert project.workflow("w3") is not None
    assert project.parents("c2") == ["w1", "w2", "w3"]


def test_lookup_cost_does_not_grow_with_the_project() -> None:
    def per_lookup(project: Project) -> float:
        names = [c.name for c in project.calls[-50:]]
        project.call(names[0])  # builds the index
        start = time.perf_counter()
        for _ in range(20):
            for name in names:
                project.call(name)
        return (time.perf_counter() - start) / (20 * len(names))

    small, large = per_lookup(_project(100)), per_lookup(_project(10_000))
    # A scan of 10,000 calls is ~100× one of 100; a dict lookup costs the same (generous bound
    # for a loaded machine).
    assert large < small * 10 + 2e-6, (small, large)
