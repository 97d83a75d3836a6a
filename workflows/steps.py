"""Run an activity from a workflow through its typed reference (`sorapi.contracts.activities`).

`run` and `run_local` take the same options as `workflow.execute_activity` and
`workflow.execute_local_activity`; what they add is the check that the argument is the activity's
and the result decoded into its result type, so a workflow and a worker cannot drift apart unseen.
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sorapi.contracts.activities import Activity

A = TypeVar("A")
R = TypeVar("R")


async def run(activity: Activity[A, R], arg: A, **options: Any) -> R:
    """Run `activity` on a worker of its task queue (the workflow's own unless `task_queue` is given).

    Args:
        activity: The typed reference of the activity.
        arg: Its one argument.
        **options: Timeouts, retry policy, task queue, summary... as `workflow.execute_activity` takes them.

    Returns:
        The activity's result, decoded into its result type.
    """
    result: R = await workflow.execute_activity(activity.name, arg, result_type=activity.result_type, **options)
    return result


async def run_local(activity: Activity[A, R], arg: A, **options: Any) -> R:
    """Run `activity` as a local activity, in the worker that runs the workflow.

    Args:
        activity: The typed reference of the activity.
        arg: Its one argument.
        **options: Timeouts, retry policy, summary... as `workflow.execute_local_activity` takes them.

    Returns:
        The activity's result, decoded into its result type.
    """
    result: R = await workflow.execute_local_activity(activity.name, arg, result_type=activity.result_type, **options)
    return result
